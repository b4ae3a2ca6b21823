// crc32: byte-wide CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) with a
// built-in 16-bit Fibonacci LFSR (x^16 + x^14 + x^13 + x^11 + 1) that can feed it
// pseudo-random bytes for a self test. crc is the finished value (final XOR applied):
// the bytes "123456789" give 32'hCBF43926.
module crc32 (
    input  wire        clk,
    input  wire        rst,        // synchronous, active high
    input  wire        init,       // restart the CRC (state <= all ones)
    input  wire        valid,      // absorb one byte this cycle
    input  wire        use_lfsr,   // absorb the LFSR's byte instead of data
    input  wire [7:0]  data,
    output wire [31:0] crc,
    output wire [7:0]  lfsr_byte
);
    reg [31:0] state;
    reg [15:0] lfsr;

    assign crc = ~state;
    assign lfsr_byte = lfsr[7:0];

    // one byte through the bitwise LFSR division, LSB first
    function [31:0] next_crc;
        input [31:0] c;
        input [7:0]  d;
        integer k;
        begin
            next_crc = c;
            for (k = 0; k < 8; k = k + 1)
                next_crc = (next_crc[0] ^ d[k]) ? ({1'b0, next_crc[31:1]} ^ 32'hEDB88320)
                                                :  {1'b0, next_crc[31:1]};
        end
    endfunction

    // eight LFSR steps per byte so consecutive bytes do not overlap
    function [15:0] next_lfsr;
        input [15:0] s;
        integer k;
        begin
            next_lfsr = s;
            for (k = 0; k < 8; k = k + 1)
                next_lfsr = {next_lfsr[14:0],
                             next_lfsr[15] ^ next_lfsr[13] ^ next_lfsr[12] ^ next_lfsr[10]};
        end
    endfunction

    wire [7:0] byte_in = use_lfsr ? lfsr[7:0] : data;

    always @(posedge clk) begin
        if (rst) begin
            state <= 32'hFFFFFFFF;
            lfsr  <= 16'h0001;
        end else begin
            if (init)
                state <= 32'hFFFFFFFF;
            else if (valid)
                state <= next_crc(state, byte_in);
            if (valid && use_lfsr)
                lfsr <= next_lfsr(lfsr);
        end
    end
endmodule
