// counter: 8-bit up/down counter with synchronous reset, load and enable.
// The smallest example design (well under 100 standard cells on osu018).
module counter (
    input  wire       clk,
    input  wire       rst,      // synchronous, active high
    input  wire       en,       // count when high
    input  wire       up,       // 1: count up, 0: count down
    input  wire       load,     // load d (has priority over en)
    input  wire [7:0] d,
    output reg  [7:0] q,
    output wire       wrap      // q is about to wrap in the current direction
);
    assign wrap = en & (q == {8{up}});     // all ones counting up, all zeros counting down

    always @(posedge clk) begin
        if (rst)
            q <= 8'h00;
        else if (load)
            q <= d;
        else if (en)
            q <= up ? q + 8'd1 : q - 8'd1;
    end
endmodule
