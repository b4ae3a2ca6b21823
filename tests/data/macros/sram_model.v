// A behavioural model of sram_stub (four words of two bits) for simulation: synthesis keeps it a box
// when the flow is given --blackbox sram_stub (tests/test_macros_flow.py).
module sram_stub (input CLK, input WE, input A0, input A1, input D0, input D1, output reg Q0, output reg Q1);
  reg [1:0] mem [0:3];
  always @(posedge CLK) begin
    if (WE) mem[{A1, A0}] <= {D1, D0};
    {Q1, Q0} <= mem[{A1, A0}];
  end
endmodule
