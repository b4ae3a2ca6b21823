// gray_prio: purely combinational (no clock): 16-bit binary-to-Gray and
// Gray-to-binary converters and a 16-input priority encoder (index of the highest
// set bit, with a valid flag and a population count). Exercises the no-clock path:
// timing has only unconstrained input-to-output paths.
module gray_prio (
    input  wire [15:0] bin,
    input  wire [15:0] gray,
    input  wire [15:0] req,
    output wire [15:0] bin2gray,
    output reg  [15:0] gray2bin,
    output reg  [3:0]  index,       // highest set bit of req
    output wire        any,         // req != 0
    output reg  [4:0]  count        // number of set bits in req
);
    integer k;

    assign bin2gray = bin ^ (bin >> 1);
    assign any = |req;

    always @(*) begin
        gray2bin[15] = gray[15];
        for (k = 14; k >= 0; k = k - 1)
            gray2bin[k] = gray2bin[k + 1] ^ gray[k];
    end

    always @(*) begin
        index = 4'd0;
        for (k = 0; k < 16; k = k + 1)
            if (req[k]) index = k;
    end

    always @(*) begin
        count = 5'd0;
        for (k = 0; k < 16; k = k + 1)
            count = count + req[k];
    end
endmodule
