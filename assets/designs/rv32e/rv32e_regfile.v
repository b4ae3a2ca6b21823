// rv32e_regfile: 15 x 32-bit registers in flip-flops (x0 reads as zero), one write and three read ports.
module rv32e_regfile (
    input  wire        clk,
    input  wire        we,
    input  wire [4:0]  waddr,
    input  wire [31:0] wdata,
    input  wire [4:0]  raddr1,
    input  wire [4:0]  raddr2,
    input  wire [4:0]  raddr3,
    output wire [31:0] rdata1,
    output wire [31:0] rdata2,
    output wire [31:0] rdata3
);
    reg [31:0] regs [1:15];    // x0 is hard-wired to zero
    assign rdata1 = (raddr1[3:0] == 4'd0) ? 32'd0 : regs[raddr1[3:0]];
    assign rdata2 = (raddr2[3:0] == 4'd0) ? 32'd0 : regs[raddr2[3:0]];
    assign rdata3 = (raddr3[3:0] == 4'd0) ? 32'd0 : regs[raddr3[3:0]];
    always @(posedge clk)
        if (we && waddr[3:0] != 4'd0)
            regs[waddr[3:0]] <= wdata;
endmodule
