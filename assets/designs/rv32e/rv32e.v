// rv32e: a single-cycle RV32E processor: the full RV32I instruction set (FENCE and
// CSR instructions execute as no-ops; ECALL/EBREAK halt) with the embedded profile's
// 16 registers x0..x15 (register numbers are taken modulo 16). Harvard memory ports with
// combinational reads (the testbench models both memories); stores are presented
// with byte strobes and written by the memory at the falling clock edge.
// A third register-file read port (dbg_sel/dbg_data) lets a testbench read the
// registers of the gate-level netlist, which has no hierarchy to peek into.
// The 15x32-bit register file in flip-flops (three read ports) and the 32-bit
// datapath make this the large example design (about 6,700 cells on osu018).
// The ALU and the register file are in rv32e_alu.v and rv32e_regfile.v (a multi-file example).
module rv32e (
    input  wire        clk,
    input  wire        rst,          // synchronous, active high: pc <= 0
    output wire [31:0] imem_addr,
    input  wire [31:0] imem_data,
    output wire [31:0] dmem_addr,
    output wire [31:0] dmem_wdata,   // store data already shifted into its byte lanes
    output wire [3:0]  dmem_wstrb,
    output wire        dmem_re,
    input  wire [31:0] dmem_rdata,   // the aligned word at dmem_addr[31:2]
    output reg         halted,
    input  wire [4:0]  dbg_sel,
    output wire [31:0] dbg_data
);
    reg [31:0] pc;
    wire [31:0] ins = imem_data;
    assign imem_addr = pc;

    wire [6:0] opcode = ins[6:0];
    wire [4:0] rd = ins[11:7], rs1 = ins[19:15], rs2 = ins[24:20];
    wire [2:0] funct3 = ins[14:12];
    wire       f7alt = ins[30];

    wire is_lui    = opcode == 7'b0110111;
    wire is_auipc  = opcode == 7'b0010111;
    wire is_jal    = opcode == 7'b1101111;
    wire is_jalr   = opcode == 7'b1100111;
    wire is_branch = opcode == 7'b1100011;
    wire is_load   = opcode == 7'b0000011;
    wire is_store  = opcode == 7'b0100011;
    wire is_opimm  = opcode == 7'b0010011;
    wire is_op     = opcode == 7'b0110011;
    wire is_system = opcode == 7'b1110011;

    wire [31:0] imm_i = {{20{ins[31]}}, ins[31:20]};
    wire [31:0] imm_s = {{20{ins[31]}}, ins[31:25], ins[11:7]};
    wire [31:0] imm_b = {{19{ins[31]}}, ins[31], ins[7], ins[30:25], ins[11:8], 1'b0};
    wire [31:0] imm_u = {ins[31:12], 12'd0};
    wire [31:0] imm_j = {{11{ins[31]}}, ins[31], ins[19:12], ins[20], ins[30:21], 1'b0};

    wire [31:0] rs1_val, rs2_val;
    reg  [31:0] wb_val;
    wire        wb_en = !halted && !rst &&
                        (is_lui | is_auipc | is_jal | is_jalr | is_load | is_opimm | is_op);

    rv32e_regfile rf (.clk(clk), .we(wb_en), .waddr(rd), .wdata(wb_val),
                      .raddr1(rs1), .raddr2(rs2), .raddr3(dbg_sel),
                      .rdata1(rs1_val), .rdata2(rs2_val), .rdata3(dbg_data));

    // ALU: register-register, register-immediate (SRAI keeps its alt bit; ADDI has none)
    wire [31:0] alu_b   = is_op ? rs2_val : imm_i;
    wire        alu_alt = f7alt && (is_op || funct3 == 3'b101);
    wire [31:0] alu_y;
    rv32e_alu alu (.a(rs1_val), .b(alu_b), .funct3(funct3), .alt(alu_alt), .y(alu_y));

    // branches
    reg take;
    always @(*) begin
        case (funct3)
            3'b000:  take = rs1_val == rs2_val;
            3'b001:  take = rs1_val != rs2_val;
            3'b100:  take = $signed(rs1_val) < $signed(rs2_val);
            3'b101:  take = $signed(rs1_val) >= $signed(rs2_val);
            3'b110:  take = rs1_val < rs2_val;
            3'b111:  take = rs1_val >= rs2_val;
            default: take = 1'b0;
        endcase
    end

    // memory
    wire [31:0] addr = rs1_val + (is_store ? imm_s : imm_i);
    wire [1:0]  lane = addr[1:0];
    assign dmem_addr  = addr;
    assign dmem_re    = is_load && !halted;
    assign dmem_wdata = (funct3[1:0] == 2'b00) ? {4{rs2_val[7:0]}} :
                        (funct3[1:0] == 2'b01) ? {2{rs2_val[15:0]}} : rs2_val;
    assign dmem_wstrb = (!is_store || halted || rst) ? 4'b0000 :
                        (funct3[1:0] == 2'b00) ? (4'b0001 << lane) :
                        (funct3[1:0] == 2'b01) ? (lane[1] ? 4'b1100 : 4'b0011) : 4'b1111;

    wire [31:0] shifted = dmem_rdata >> {lane, 3'b000};
    reg  [31:0] load_val;
    always @(*) begin
        case (funct3)
            3'b000:  load_val = {{24{shifted[7]}}, shifted[7:0]};
            3'b001:  load_val = {{16{shifted[15]}}, shifted[15:0]};
            3'b100:  load_val = {24'd0, shifted[7:0]};
            3'b101:  load_val = {16'd0, shifted[15:0]};
            default: load_val = dmem_rdata;
        endcase
    end

    wire [31:0] pc_plus4 = pc + 32'd4;
    always @(*) begin
        if (is_lui)                 wb_val = imm_u;
        else if (is_auipc)          wb_val = pc + imm_u;
        else if (is_jal | is_jalr)  wb_val = pc_plus4;
        else if (is_load)           wb_val = load_val;
        else                        wb_val = alu_y;
    end

    wire [31:0] jalr_target = (rs1_val + imm_i) & 32'hFFFFFFFE;
    wire [31:0] next_pc = is_jal                ? pc + imm_j :
                          is_jalr               ? jalr_target :
                          (is_branch && take)   ? pc + imm_b : pc_plus4;

    always @(posedge clk) begin
        if (rst) begin
            pc <= 32'd0;
            halted <= 1'b0;
        end else if (!halted) begin
            if (is_system && funct3 == 3'b000)   // ECALL / EBREAK
                halted <= 1'b1;
            else
                pc <= next_pc;
        end
    end
endmodule
