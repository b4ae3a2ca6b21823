// Broken input for tests: a combinational loop (y feeds back into itself through
// two gates without a register), which synthesis should report rather than map.
module comb_loop (
    input  wire a,
    input  wire b,
    output wire y
);
    wire n1, n2;
    assign n1 = ~(a & n2);
    assign n2 = ~(b & n1);
    assign y = n1 ^ n2;
endmodule
