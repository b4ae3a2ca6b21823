// Self-checking testbench for fir: an impulse, a step, a square wave and
// pseudo-random samples, compared with a behavioural convolution. Prints
// "OUT <cycle> <y> <out_valid>" per cycle. +vcd=<path> dumps a VCD.
`timescale 1ns/1ps
module tb_fir;
    reg clk = 1'b0;
    reg rst = 1'b1, in_valid = 1'b0;
    reg signed [7:0] x = 8'sd0;
    wire signed [15:0] y;
    wire out_valid;
    reg signed [7:0] hist [0:7];          // model delay line, hist[0] newest
    reg signed [15:0] coef [0:7];
    reg signed [31:0] expected;
    reg [15:0] lfsr = 16'hace1;
    reg [1023:0] vcd_path;
    integer cycle, errors, checks, k;

    fir dut (.clk(clk), .rst(rst), .in_valid(in_valid), .x(x), .y(y), .out_valid(out_valid));

    always #5 clk = ~clk;

    initial begin
        if ($value$plusargs("vcd=%s", vcd_path)) begin
            $dumpfile(vcd_path);
            $dumpvars(0, tb_fir);
        end
        coef[0] = 2; coef[1] = -5; coef[2] = 12; coef[3] = 39;
        coef[4] = 39; coef[5] = 12; coef[6] = -5; coef[7] = 2;
        for (k = 0; k < 8; k = k + 1) hist[k] = 0;
        errors = 0; checks = 0; expected = 0;
        for (cycle = 0; cycle < 360; cycle = cycle + 1) begin
            @(negedge clk);
            if (cycle >= 2) begin
                $display("OUT %0d %h %b", cycle, y, out_valid);
                if (out_valid) begin
                    checks = checks + 1;
                    if (y !== expected[15:0]) begin
                        errors = errors + 1;
                        $display("ERROR cycle %0d: y=%0d expected %0d", cycle, y, expected);
                    end
                end
            end
            rst = (cycle < 2);
            lfsr = {lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]};
            in_valid = (cycle >= 2) && (cycle % 9 != 5);
            if (cycle < 40)       x = (cycle == 10) ? 8'sd100 : 8'sd0;          // impulse
            else if (cycle < 80)  x = (cycle < 60) ? -8'sd128 : 8'sd127;         // extreme steps
            else if (cycle < 160) x = (cycle % 8 < 4) ? 8'sd50 : -8'sd50;       // square wave
            else                  x = lfsr[7:0];                                 // noise
            if (in_valid) begin
                for (k = 7; k > 0; k = k - 1) hist[k] = hist[k - 1];
                hist[0] = x;
                expected = 0;
                for (k = 0; k < 8; k = k + 1) expected = expected + coef[k] * hist[k];
            end
        end
        if (errors == 0) $display("PASS fir %0d checks", checks);
        else $display("FAIL fir: %0d errors", errors);
        $finish;
    end
endmodule
