// Self-checking testbench for alu: pseudo-random operands (a fixed LFSR seed) over
// every opcode, checked against a behavioural model. Prints
// "OUT <cycle> <y> <zcnv flags>" per cycle. +vcd=<path> dumps a VCD.
`timescale 1ns/1ps
module tb_alu;
    reg clk = 1'b0;
    reg rst = 1'b1, valid = 1'b0;
    reg [3:0] op = 4'd0;
    reg [15:0] a = 16'd0, b = 16'd0;
    wire [15:0] y;
    wire zero, carry, negative, overflow;
    reg [31:0] lfsr = 32'h1234abcd;
    reg [15:0] exp_y;
    reg exp_c, exp_v;
    reg [16:0] t;
    reg [31:0] rot;
    reg [1023:0] vcd_path;
    integer cycle, errors, checks;

    alu dut (.clk(clk), .rst(rst), .valid(valid), .op(op), .a(a), .b(b), .y(y),
             .zero(zero), .carry(carry), .negative(negative), .overflow(overflow));

    always #5 clk = ~clk;

    // expected result of the operation applied in the previous cycle
    task model;
        begin
            exp_c = 1'b0; exp_v = 1'b0;
            case (op)
                4'd0: begin t = a + b; exp_y = t[15:0]; exp_c = t[16];
                      exp_v = (a[15] == b[15]) && (t[15] != a[15]); end
                4'd1: begin t = {1'b0, a} - {1'b0, b}; exp_y = t[15:0]; exp_c = t[16];
                      exp_v = (a[15] != b[15]) && (t[15] != a[15]); end
                4'd2: exp_y = a & b;
                4'd3: exp_y = a | b;
                4'd4: exp_y = a ^ b;
                4'd5: exp_y = ~(a | b);
                4'd6: exp_y = a << b[3:0];
                4'd7: exp_y = a >> b[3:0];
                4'd8: exp_y = $signed(a) >>> b[3:0];
                4'd9: exp_y = ($signed(a) < $signed(b)) ? 16'd1 : 16'd0;
                4'd10: exp_y = (a < b) ? 16'd1 : 16'd0;
                4'd11: exp_y = b;
                4'd12: begin rot = {a, a} << b[3:0]; exp_y = rot[31:16]; end
                4'd13: begin rot = {a, a} >> b[3:0]; exp_y = rot[15:0]; end
                4'd14: begin t = a + 17'd1; exp_y = t[15:0]; exp_c = t[16]; end
                default: exp_y = ~a;
            endcase
        end
    endtask

    initial begin
        if ($value$plusargs("vcd=%s", vcd_path)) begin
            $dumpfile(vcd_path);
            $dumpvars(0, tb_alu);
        end
        errors = 0; checks = 0;
        for (cycle = 0; cycle < 400; cycle = cycle + 1) begin
            @(negedge clk);
            if (cycle >= 3) begin
                $display("OUT %0d %h %b%b%b%b", cycle, y, zero, carry, negative, overflow);
                checks = checks + 1;
                if (y !== exp_y || carry !== exp_c || overflow !== exp_v ||
                    zero !== (exp_y == 16'd0) || negative !== exp_y[15]) begin
                    errors = errors + 1;
                    $display("ERROR cycle %0d op %0d a %h b %h: y=%h c=%b v=%b expected %h %b %b",
                             cycle, op, a, b, y, carry, overflow, exp_y, exp_c, exp_v);
                end
            end
            // new operands for the next rising edge
            lfsr = {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
            lfsr = {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
            rst = (cycle < 2);
            valid = 1'b1;
            op = cycle[3:0];
            a = (cycle % 11 == 0) ? 16'h7fff : lfsr[31:16];
            b = (cycle % 13 == 0) ? 16'h0001 : lfsr[15:0] ^ {lfsr[7:0], lfsr[23:16]};
            model;
        end
        if (errors == 0) $display("PASS alu %0d checks", checks);
        else $display("FAIL alu: %0d errors", errors);
        $finish;
    end
endmodule
