// Broken input for tests: two unrelated modules and no --top: neither instantiates
// the other, so there is no obvious top module to pick.
module blinker (
    input  wire clk,
    input  wire rst,
    output reg  led
);
    reg [3:0] count;
    always @(posedge clk) begin
        if (rst) begin count <= 4'd0; led <= 1'b0; end
        else begin
            count <= count + 4'd1;
            if (count == 4'd15) led <= ~led;
        end
    end
endmodule

module parity (
    input  wire [7:0] data,
    output wire       odd
);
    assign odd = ^data;
endmodule
