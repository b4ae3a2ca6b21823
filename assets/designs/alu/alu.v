// alu: 16-bit ALU with a registered result and flags (zero, carry, negative, overflow).
// Operations follow a RISC-style opcode; shifts use b[3:0].
module alu (
    input  wire        clk,
    input  wire        rst,        // synchronous, active high
    input  wire        valid,      // register a new result this cycle
    input  wire [3:0]  op,
    input  wire [15:0] a,
    input  wire [15:0] b,
    output reg  [15:0] y,
    output reg         zero,
    output reg         carry,
    output reg         negative,
    output reg         overflow
);
    localparam OP_ADD  = 4'd0, OP_SUB  = 4'd1, OP_AND  = 4'd2, OP_OR   = 4'd3,
               OP_XOR  = 4'd4, OP_NOR  = 4'd5, OP_SLL  = 4'd6, OP_SRL  = 4'd7,
               OP_SRA  = 4'd8, OP_SLT  = 4'd9, OP_SLTU = 4'd10, OP_PASS = 4'd11,
               OP_ROL  = 4'd12, OP_ROR = 4'd13, OP_INC  = 4'd14, OP_NOT = 4'd15;

    reg [16:0] res;       // bit 16 is the carry out
    reg        ovf;
    wire [16:0] sum  = {1'b0, a} + {1'b0, b};
    wire [16:0] diff = {1'b0, a} - {1'b0, b};
    wire [3:0]  sh   = b[3:0];

    always @(*) begin
        ovf = 1'b0;
        case (op)
            OP_ADD:  begin res = sum;  ovf = (a[15] == b[15]) && (sum[15] != a[15]); end
            OP_SUB:  begin res = diff; ovf = (a[15] != b[15]) && (diff[15] != a[15]); end
            OP_AND:  res = {1'b0, a & b};
            OP_OR:   res = {1'b0, a | b};
            OP_XOR:  res = {1'b0, a ^ b};
            OP_NOR:  res = {1'b0, ~(a | b)};
            OP_SLL:  res = {1'b0, a << sh};
            OP_SRL:  res = {1'b0, a >> sh};
            OP_SRA:  res = {1'b0, $signed(a) >>> sh};
            OP_SLT:  res = {16'd0, $signed(a) < $signed(b)};
            OP_SLTU: res = {16'd0, a < b};
            OP_PASS: res = {1'b0, b};
            OP_ROL:  res = {1'b0, (a << sh) | (a >> (5'd16 - {1'b0, sh}))};
            OP_ROR:  res = {1'b0, (a >> sh) | (a << (5'd16 - {1'b0, sh}))};
            OP_INC:  res = {1'b0, a} + 17'd1;
            default: res = {1'b0, ~a};
        endcase
    end

    always @(posedge clk) begin
        if (rst) begin
            y <= 16'd0; zero <= 1'b1; carry <= 1'b0; negative <= 1'b0; overflow <= 1'b0;
        end else if (valid) begin
            y        <= res[15:0];
            zero     <= (res[15:0] == 16'd0);
            carry    <= res[16];
            negative <= res[15];
            overflow <= ovf;
        end
    end
endmodule
