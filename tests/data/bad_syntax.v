// Broken input for tests: a missing semicolon at the end of line 7 (tools report line 8).
module bad_syntax (
    input  wire       clk,
    input  wire [3:0] a,
    output reg  [3:0] q
);
    wire [3:0] b = a + 4'd1
    always @(posedge clk)
        q <= b;
endmodule
