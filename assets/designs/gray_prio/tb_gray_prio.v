// Self-checking testbench for gray_prio (combinational, no clock): walking ones,
// corner values and pseudo-random vectors, each held 10 ns, compared with models.
// Prints "OUT <vector> <bin2gray> <gray2bin> <index> <any> <count>".
// +vcd=<path> dumps a VCD.
`timescale 1ns/1ps
module tb_gray_prio;
    reg [15:0] bin = 16'd0, gray = 16'd0, req = 16'd0;
    wire [15:0] bin2gray, gray2bin;
    wire [3:0] index;
    wire any;
    wire [4:0] count;
    reg [15:0] e_g2b;
    reg [3:0] e_index;
    reg [4:0] e_count;
    reg [31:0] lfsr = 32'hdeadbeef;
    reg [1023:0] vcd_path;
    integer v, k, errors;

    gray_prio dut (.bin(bin), .gray(gray), .req(req), .bin2gray(bin2gray), .gray2bin(gray2bin),
                   .index(index), .any(any), .count(count));

    initial begin
        if ($value$plusargs("vcd=%s", vcd_path)) begin
            $dumpfile(vcd_path);
            $dumpvars(0, tb_gray_prio);
        end
        errors = 0;
        for (v = 0; v < 300; v = v + 1) begin
            lfsr = {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
            if (v < 16) begin
                bin = 16'd1 << v; gray = 16'd1 << v; req = 16'd1 << v;
            end else if (v < 20) begin
                bin = {16{v[0]}}; gray = {16{v[1]}}; req = (v == 16) ? 16'd0 : 16'hffff;
            end else begin
                bin = lfsr[31:16]; gray = lfsr[15:0]; req = lfsr[23:8] & {16{v[2]}} | (lfsr[27:12] >> v[3:0]);
            end
            #10;
            e_g2b[15] = gray[15];
            for (k = 14; k >= 0; k = k - 1) e_g2b[k] = e_g2b[k + 1] ^ gray[k];
            e_index = 0; e_count = 0;
            for (k = 0; k < 16; k = k + 1) begin
                if (req[k]) e_index = k;
                e_count = e_count + req[k];
            end
            $display("OUT %0d %h %h %h %b %0d", v, bin2gray, gray2bin, index, any, count);
            if (bin2gray !== (bin ^ (bin >> 1)) || gray2bin !== e_g2b || index !== e_index
                || any !== (req != 0) || count !== e_count) begin
                errors = errors + 1;
                $display("ERROR vector %0d: bin %h gray %h req %h", v, bin, gray, req);
            end
        end
        if (errors == 0) $display("PASS gray_prio %0d vectors", v);
        else $display("FAIL gray_prio: %0d errors", errors);
        $finish;
    end
endmodule
