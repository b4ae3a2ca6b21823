`timescale 1ns/1ps
module tb_hostile;
  reg clk = 0, a = 0;
  reg [3:0] c = 0;
  reg [1:0] d = 0;
  reg [7:0] bus_in = 0;
  wire thru, zero, one, twin1, twin2, q;
  wire [5:0] cat;
  wire [3:0] slice;
  wire [2:0] mixed;
  wire [1:0] par;
  hostile dut (.clk(clk), .a(a), .c(c), .d(d), .bus_in(bus_in), .thru(thru), .zero(zero), .one(one),
               .cat(cat), .twin1(twin1), .twin2(twin2), .slice(slice), .mixed(mixed), .par(par), .q(q));
  always #5 clk = ~clk;
  integer i;
  initial begin
    for (i = 0; i < 64; i = i + 1) begin
      @(negedge clk);
      if (i >= 1) $display("OUT %0d thru=%b zero=%b one=%b cat=%b twin=%b%b slice=%b mixed=%b par=%b q=%b",
                           i, thru, zero, one, cat, twin1, twin2, slice, mixed, par, q);
      a = i[0] ^ i[3]; c = i * 7; d = i[5:4] ^ i[1:0]; bus_in = i * 37 + 11;
    end
    $finish;
  end
endmodule
