// Self-checking testbench for uart: tx looped back to rx, 16 bytes sent at two
// baud divisors, then one frame with a broken stop bit. Prints
// "OUT <cycle> <tx> <busy> <rx_data> <rx_valid> <rx_error>" per cycle.
// +vcd=<path> dumps a VCD.
`timescale 1ns/1ps
module tb_uart;
    reg clk = 1'b0;
    reg rst = 1'b1;
    reg [7:0] div = 8'd8;
    reg [7:0] tx_data = 8'h00;
    reg tx_start = 1'b0;
    reg force_low = 1'b0;     // drives the line low to corrupt a stop bit
    wire tx, tx_busy, rx_valid, rx_error;
    wire [7:0] rx_data;
    reg [7:0] expected [0:31];
    reg [1023:0] vcd_path;
    integer cycle, errors, sent, received, frame_errors, since_last;

    uart dut (.clk(clk), .rst(rst), .div(div), .tx_data(tx_data), .tx_start(tx_start),
              .tx(tx), .tx_busy(tx_busy), .rx(tx & ~force_low), .rx_data(rx_data),
              .rx_valid(rx_valid), .rx_error(rx_error));

    always #5 clk = ~clk;

    initial begin
        if ($value$plusargs("vcd=%s", vcd_path)) begin
            $dumpfile(vcd_path);
            $dumpvars(0, tb_uart);
        end
        errors = 0; sent = 0; received = 0; frame_errors = 0; since_last = 0;
        for (cycle = 0; cycle < 2600; cycle = cycle + 1) begin
            @(negedge clk);
            if (cycle >= 2)
                $display("OUT %0d %b %b %h %b %b", cycle, tx, tx_busy, rx_data, rx_valid, rx_error);
            if (rx_valid) begin
                if (received < 16) begin
                    if (rx_data !== expected[received] || rx_error !== 1'b0) begin
                        errors = errors + 1;
                        $display("ERROR byte %0d: got %h err %b expected %h", received, rx_data,
                                 rx_error, expected[received]);
                    end
                end else if (rx_error === 1'b1) begin
                    frame_errors = frame_errors + 1;
                end
                received = received + 1;
            end
            rst = (cycle < 2);
            tx_start = 1'b0;
            if (cycle == 1200) div = 8'd5;              // change baud rate between frames
            if (!rst && !tx_busy && !tx_start && sent < 17 && cycle % 3 == 0
                && (cycle < 1150 || cycle > 1210)) begin
                tx_data = (sent * 8'd37) ^ 8'ha5;
                expected[sent] = tx_data;
                tx_start = 1'b1;
                sent = sent + 1;
                since_last = 0;
            end else begin
                since_last = since_last + 1;
            end
            // corrupt the stop bit of the 17th frame: hold the line low through it
            force_low = (sent == 17) && (since_last >= 9 * div) && (since_last < 10 * div);
        end
        if (received != 17) begin
            errors = errors + 1;
            $display("ERROR received %0d bytes, expected 17", received);
        end
        if (frame_errors != 1) begin
            errors = errors + 1;
            $display("ERROR saw %0d framing errors, expected 1", frame_errors);
        end
        if (errors == 0) $display("PASS uart %0d bytes", received);
        else $display("FAIL uart: %0d errors", errors);
        $finish;
    end
endmodule
