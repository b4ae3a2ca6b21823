// rv32e_alu: the rv32e processor's integer ALU (RV32I register-register and immediate operations).
module rv32e_alu (
    input  wire [31:0] a,
    input  wire [31:0] b,
    input  wire [2:0]  funct3,
    input  wire        alt,        // SUB / SRA
    output reg  [31:0] y
);
    wire [4:0] sh = b[4:0];
    always @(*) begin
        case (funct3)
            3'b000: y = alt ? a - b : a + b;
            3'b001: y = a << sh;
            3'b010: y = {31'd0, $signed(a) < $signed(b)};
            3'b011: y = {31'd0, a < b};
            3'b100: y = a ^ b;
            // (not a ?: here: its unsigned arm would make >>> a logical shift)
            3'b101: if (alt) y = $signed(a) >>> sh; else y = a >> sh;
            3'b110: y = a | b;
            default: y = a & b;
        endcase
    end
endmodule
