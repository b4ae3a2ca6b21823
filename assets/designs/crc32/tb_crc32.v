// Self-checking testbench for crc32: the standard check string "123456789"
// (CRC 32'hCBF43926), then 200 LFSR bytes, then 64 bytes with gaps, each compared
// with a bit-serial model. Prints "OUT <cycle> <crc> <lfsr_byte>" per cycle.
// +vcd=<path> dumps a VCD.
`timescale 1ns/1ps
module tb_crc32;
    reg clk = 1'b0;
    reg rst = 1'b1, init = 1'b0, valid = 1'b0, use_lfsr = 1'b0;
    reg [7:0] data = 8'h00;
    wire [31:0] crc;
    wire [7:0] lfsr_byte;
    reg [31:0] model;
    reg [7:0] check_string [0:8];
    reg [7:0] b;
    reg [1023:0] vcd_path;
    integer cycle, errors, checks, k;

    crc32 dut (.clk(clk), .rst(rst), .init(init), .valid(valid), .use_lfsr(use_lfsr),
               .data(data), .crc(crc), .lfsr_byte(lfsr_byte));

    always #5 clk = ~clk;

    task absorb;
        input [7:0] d;
        begin
            for (k = 0; k < 8; k = k + 1)
                model = (model[0] ^ d[k]) ? ((model >> 1) ^ 32'hEDB88320) : (model >> 1);
        end
    endtask

    initial begin
        if ($value$plusargs("vcd=%s", vcd_path)) begin
            $dumpfile(vcd_path);
            $dumpvars(0, tb_crc32);
        end
        check_string[0] = "1"; check_string[1] = "2"; check_string[2] = "3";
        check_string[3] = "4"; check_string[4] = "5"; check_string[5] = "6";
        check_string[6] = "7"; check_string[7] = "8"; check_string[8] = "9";
        errors = 0; checks = 0; model = 32'hFFFFFFFF;
        for (cycle = 0; cycle < 320; cycle = cycle + 1) begin
            @(negedge clk);
            if (cycle >= 2) begin
                $display("OUT %0d %h %h", cycle, crc, lfsr_byte);
                checks = checks + 1;
                if (crc !== ~model) begin
                    errors = errors + 1;
                    $display("ERROR cycle %0d: crc=%h expected %h", cycle, crc, ~model);
                end
            end
            if (cycle == 12 && crc !== 32'hCBF43926) begin
                errors = errors + 1;
                $display("ERROR check string CRC %h, expected cbf43926", crc);
            end
            // stimulus for the next edge, applied to the model at the same time
            rst = (cycle < 2);
            init = (cycle == 12) || (cycle == 240);
            use_lfsr = (cycle >= 13) && (cycle < 230);
            valid = ((cycle >= 3) && (cycle < 12)) || ((cycle >= 13) && (cycle < 230))
                    || ((cycle > 240) && (cycle % 3 != 0));
            data = (cycle >= 3 && cycle < 12) ? check_string[cycle - 3] : cycle[7:0] ^ 8'h5a;
            b = use_lfsr ? lfsr_byte : data;
            if (rst || init) model = 32'hFFFFFFFF;
            else if (valid) absorb(b);
        end
        if (errors == 0) $display("PASS crc32 %0d checks", checks);
        else $display("FAIL crc32: %0d errors", errors);
        $finish;
    end
endmodule
