// uart: 8N1 transmitter and receiver sharing a run-time baud divisor.
// div = clock cycles per bit (>= 4). The receiver synchronises rx with two flops,
// finds the start bit's middle and samples each bit there; a missing stop bit
// sets rx_error for that byte.
module uart_tx (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] div,
    input  wire [7:0] data,
    input  wire       start,
    output reg        tx,
    output wire       busy
);
    reg [7:0] count;
    reg [3:0] bitn;     // 0: idle, 1: start bit, 2..9: data, 10: stop
    reg [7:0] shift;

    assign busy = (bitn != 4'd0);

    always @(posedge clk) begin
        if (rst) begin
            tx <= 1'b1; count <= 8'd0; bitn <= 4'd0; shift <= 8'd0;
        end else if (bitn == 4'd0) begin
            if (start) begin
                shift <= data; bitn <= 4'd1; tx <= 1'b0; count <= div - 8'd1;
            end
        end else if (count != 8'd0) begin
            count <= count - 8'd1;
        end else begin
            count <= div - 8'd1;
            if (bitn == 4'd10) begin
                bitn <= 4'd0;            // stop bit done
            end else if (bitn == 4'd9) begin
                tx <= 1'b1; bitn <= 4'd10;
            end else begin
                tx <= shift[0]; shift <= {1'b0, shift[7:1]}; bitn <= bitn + 4'd1;
            end
        end
    end
endmodule

module uart_rx (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] div,
    input  wire       rx,
    output reg  [7:0] data,
    output reg        valid,
    output reg        error
);
    reg [1:0] sync;
    reg [7:0] count;
    reg [3:0] bitn;     // 0: idle, 1: start bit, 2..9: data, 10: stop
    reg [7:0] shift;
    wire rxs = sync[1];

    always @(posedge clk) begin
        if (rst) begin
            sync <= 2'b11; count <= 8'd0; bitn <= 4'd0; shift <= 8'd0;
            data <= 8'd0; valid <= 1'b0; error <= 1'b0;
        end else begin
            sync  <= {sync[0], rx};
            valid <= 1'b0;
            if (bitn == 4'd0) begin
                if (!rxs) begin
                    bitn <= 4'd1; count <= {1'b0, div[7:1]} - 8'd1;   // to the middle of the start bit
                end
            end else if (count != 8'd0) begin
                count <= count - 8'd1;
            end else begin
                count <= div - 8'd1;
                if (bitn == 4'd1) begin
                    bitn <= rxs ? 4'd0 : 4'd2;                     // glitch: back to idle
                end else if (bitn == 4'd10) begin
                    bitn <= 4'd0; data <= shift; valid <= 1'b1; error <= !rxs;
                end else begin
                    shift <= {rxs, shift[7:1]}; bitn <= bitn + 4'd1;
                end
            end
        end
    end
endmodule

module uart (
    input  wire       clk,
    input  wire       rst,        // synchronous, active high
    input  wire [7:0] div,        // clock cycles per bit
    input  wire [7:0] tx_data,
    input  wire       tx_start,
    output wire       tx,
    output wire       tx_busy,
    input  wire       rx,
    output wire [7:0] rx_data,
    output wire       rx_valid,
    output wire       rx_error
);
    uart_tx u_tx (.clk(clk), .rst(rst), .div(div), .data(tx_data), .start(tx_start),
                  .tx(tx), .busy(tx_busy));
    uart_rx u_rx (.clk(clk), .rst(rst), .div(div), .rx(rx), .data(rx_data),
                  .valid(rx_valid), .error(rx_error));
endmodule
