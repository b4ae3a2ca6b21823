// A small design around one hard macro (sram_stub, tests/data/macros/sram_stub.lef): registers feed the
// macro's address and data, its outputs are mixed with more registered logic. sram_stub has no Verilog here.
module macro_top (
  input clk,
  input we,
  input [1:0] addr,
  input [3:0] din,
  output reg [3:0] dout,
  output parity
);
  reg [1:0] a_r;
  reg [1:0] d_r;
  reg we_r;
  reg [3:0] acc;
  wire q0, q1;
  always @(posedge clk) begin
    a_r <= addr ^ din[3:2];
    d_r <= din[1:0] + addr;
    we_r <= we;
    acc <= acc + {q1, q0, din[1:0]};
    dout <= acc ^ {d_r, q1, q0};
  end
  sram_stub u_ram (.CLK(clk), .WE(we_r), .A0(a_r[0]), .A1(a_r[1]), .D0(d_r[0]), .D1(d_r[1]), .Q0(q0), .Q1(q1));
  assign parity = ^{q0, q1, acc};
endmodule
