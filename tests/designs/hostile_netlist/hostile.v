// Hostile but legal: each construct below makes Yosys write an `assign` (or an escaped name) in a mapped
// netlist unless synthesis buffers it. Used by tests/test_netlist_clean.py.
module parity_slice(input [1:0] x, output y);
  (* keep *) wire kept = x[0] ^ x[1];   // a kept wire: flattened as `g[0].u.kept`, a name that needs escaping
  assign y = ~kept;
endmodule

module hostile(input clk, input a, input [3:0] c, input [1:0] d, input [7:0] bus_in,
               output thru, output zero, output one, output [5:0] cat, output twin1, output twin2,
               output [3:0] slice, output [2:0] mixed, output [1:0] par, output reg q);
  assign thru = a;                        // port-to-port feed-through
  assign zero = 1'b0;                     // output tied low
  assign one = 1'b1;                      // output tied high
  assign cat = {c, d};                    // a bus output assigned by concatenation
  wire t = c[0] ^ d[1];
  assign twin1 = t;                       // an output equal to another output
  assign twin2 = t;
  assign slice = bus_in[6:3];             // a bit-sliced bus, straight through
  assign mixed = {1'b1, a & c[1], 1'b0};  // constants and logic in one bus
  genvar i;
  generate for (i = 0; i < 2; i = i + 1) begin : g
    parity_slice u (.x(bus_in[2 * i + 1:2 * i]), .y(par[i]));
  end endgenerate
  always @(posedge clk) q <= a ^ bus_in[7];
endmodule
