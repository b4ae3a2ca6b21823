// fir: 8-tap low-pass FIR filter, 8-bit signed samples, constant symmetric
// coefficients {2, -5, 12, 39, 39, 12, -5, 2} (DC gain 96), 16-bit signed output.
// Direct form: a sample delay line that shifts when in_valid is high, the
// products summed with a pre-adder per symmetric pair, one registered output.
module fir (
    input  wire               clk,
    input  wire               rst,        // synchronous, active high
    input  wire               in_valid,
    input  wire signed [7:0]  x,
    output reg  signed [15:0] y,
    output reg                out_valid
);
    localparam signed [7:0] C0 = 8'sd2, C1 = -8'sd5, C2 = 8'sd12, C3 = 8'sd39;

    reg [55:0] line;                 // 7 past samples, line[7:0] the newest

    // x[n-k] for the sample arriving now: the new x plus the delay line
    wire signed [7:0] s0 = x,           s1 = line[7:0],   s2 = line[15:8],  s3 = line[23:16];
    wire signed [7:0] s4 = line[31:24], s5 = line[39:32], s6 = line[47:40], s7 = line[55:48];

    // pre-add symmetric pairs (9 bits), then multiply by the shared coefficient
    wire signed [8:0] p0 = s0 + s7, p1 = s1 + s6, p2 = s2 + s5, p3 = s3 + s4;
    wire signed [15:0] acc = p0 * C0 + p1 * C1 + p2 * C2 + p3 * C3;

    always @(posedge clk) begin
        if (rst) begin
            line <= 56'd0;
            y <= 16'sd0;
            out_valid <= 1'b0;
        end else begin
            out_valid <= in_valid;
            if (in_valid) begin
                line <= {line[47:0], x};
                y <= acc;
            end
        end
    end
endmodule
