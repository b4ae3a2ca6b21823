// Self-checking testbench for counter. Prints "OUT <cycle> <q> <wrap>" once per
// cycle (sampled at the falling edge, inputs change right after), so RTL and
// gate-level runs can be compared line by line. +vcd=<path> dumps a VCD.
`timescale 1ns/1ps
module tb_counter;
    reg clk = 1'b0;
    reg rst = 1'b1, en = 1'b0, up = 1'b1, load = 1'b0;
    reg [7:0] d = 8'h00;
    wire [7:0] q;
    wire wrap;
    reg [7:0] model;
    reg [1023:0] vcd_path;
    integer cycle, errors;

    counter dut (.clk(clk), .rst(rst), .en(en), .up(up), .load(load), .d(d), .q(q), .wrap(wrap));

    always #5 clk = ~clk;

    // reference model, updated on the same edge as the design
    always @(posedge clk) begin
        if (rst) model <= 8'h00;
        else if (load) model <= d;
        else if (en) model <= up ? model + 8'd1 : model - 8'd1;
    end

    initial begin
        if ($value$plusargs("vcd=%s", vcd_path)) begin
            $dumpfile(vcd_path);
            $dumpvars(0, tb_counter);
        end
        errors = 0;
        for (cycle = 0; cycle < 300; cycle = cycle + 1) begin
            @(negedge clk);
            if (cycle >= 2) begin
                $display("OUT %0d %h %b", cycle, q, wrap);
                if (q !== model) begin
                    errors = errors + 1;
                    $display("ERROR cycle %0d: q=%h expected %h", cycle, q, model);
                end
            end
            // stimulus for the next cycle
            rst  = (cycle < 2) || (cycle == 150);
            load = (cycle == 20) || (cycle == 200);
            d    = (cycle == 20) ? 8'hf0 : 8'h05;
            en   = (cycle % 7) != 3;
            up   = (cycle < 100) || (cycle > 170);
        end
        if (errors == 0) $display("PASS counter");
        else $display("FAIL counter: %0d errors", errors);
        $finish;
    end
endmodule
