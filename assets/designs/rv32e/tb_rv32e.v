// Self-checking testbench for rv32e: 1 KiB instruction and data memories (combinational
// reads, stores written at the falling edge) and a self-checking program (see
// gen_program.py) that writes 1 to address 0x3f0 when all its tests pass.
// Prints "OUT <cycle> <pc> <wstrb> <addr> <wdata> <halted>" per cycle, then the
// registers through the debug port and the data memory words the program wrote.
// +vcd=<path> dumps a VCD.
`timescale 1ns/1ps
module tb_rv32e;
    reg clk = 1'b0;
    reg rst = 1'b1;
    reg [4:0] dbg_sel = 5'd0;
    wire [31:0] imem_addr, dmem_addr, dmem_wdata, dbg_data;
    wire [3:0] dmem_wstrb;
    wire dmem_re, halted;
    reg [31:0] imem [0:255];
    reg [31:0] dmem [0:255];
    wire [31:0] imem_data = imem[imem_addr[9:2]];
    wire [31:0] dmem_rdata = dmem[dmem_addr[9:2]];
    reg [1023:0] vcd_path;
    integer cycle, i, errors;

    rv32e dut (.clk(clk), .rst(rst), .imem_addr(imem_addr), .imem_data(imem_data),
               .dmem_addr(dmem_addr), .dmem_wdata(dmem_wdata), .dmem_wstrb(dmem_wstrb),
               .dmem_re(dmem_re), .dmem_rdata(dmem_rdata), .halted(halted),
               .dbg_sel(dbg_sel), .dbg_data(dbg_data));

    always #5 clk = ~clk;

    // stores land at the falling edge, when address and data are stable
    always @(negedge clk) begin
        if (dmem_wstrb[0]) dmem[dmem_addr[9:2]][7:0]   <= dmem_wdata[7:0];
        if (dmem_wstrb[1]) dmem[dmem_addr[9:2]][15:8]  <= dmem_wdata[15:8];
        if (dmem_wstrb[2]) dmem[dmem_addr[9:2]][23:16] <= dmem_wdata[23:16];
        if (dmem_wstrb[3]) dmem[dmem_addr[9:2]][31:24] <= dmem_wdata[31:24];
    end

    initial begin
        if ($value$plusargs("vcd=%s", vcd_path)) begin
            $dumpfile(vcd_path);
            $dumpvars(0, tb_rv32e);
        end
        for (i = 0; i < 256; i = i + 1) begin
            imem[i] = 32'h00000073;     // ecall: halt if the program runs away
            dmem[i] = 32'd0;
        end
        // BEGIN PROGRAM
        imem[0] = 32'h00000137;
        imem[1] = 32'h00010113;
        imem[2] = 32'h00000637;
        imem[3] = 32'h00060613;
        imem[4] = 32'h000006b7;
        imem[5] = 32'h00068693;
        imem[6] = 32'h00000737;
        imem[7] = 32'h00070713;
        imem[8] = 32'h000007b7;
        imem[9] = 32'h00178793;
        imem[10] = 32'h000000b7;
        imem[11] = 32'h00008093;
        imem[12] = 32'h000001b7;
        imem[13] = 32'h00118193;
        imem[14] = 32'h00000237;
        imem[15] = 32'h01420213;
        imem[16] = 32'h000002b7;
        imem[17] = 32'h10028293;
        imem[18] = 32'h0012a023;
        imem[19] = 32'h00308333;
        imem[20] = 32'h00018093;
        imem[21] = 32'h00030193;
        imem[22] = 32'h00428293;
        imem[23] = 32'hfff20213;
        imem[24] = 32'hfe0214e3;
        imem[25] = 32'h000023b7;
        imem[26] = 32'ha6d38393;
        imem[27] = 32'h30709863;
        imem[28] = 32'h14c02303;
        imem[29] = 32'h000013b7;
        imem[30] = 32'h05538393;
        imem[31] = 32'h30731063;
        imem[32] = 32'h000007b7;
        imem[33] = 32'h00278793;
        imem[34] = 32'h00000537;
        imem[35] = 32'h4d250513;
        imem[36] = 32'h000015b7;
        imem[37] = 32'h62e58593;
        imem[38] = 32'h2bc000ef;
        imem[39] = 32'h006af3b7;
        imem[40] = 32'h9bc38393;
        imem[41] = 32'h2c751c63;
        imem[42] = 32'h00000537;
        imem[43] = 32'hff950513;
        imem[44] = 32'h000005b7;
        imem[45] = 32'h12c58593;
        imem[46] = 32'h29c000ef;
        imem[47] = 32'hfffff3b7;
        imem[48] = 32'h7cc38393;
        imem[49] = 32'h2a751c63;
        imem[50] = 32'h000007b7;
        imem[51] = 32'h00378793;
        imem[52] = 32'h000002b7;
        imem[53] = 32'h20028293;
        imem[54] = 32'h00000337;
        imem[55] = 32'h00530313;
        imem[56] = 32'h0062a023;
        imem[57] = 32'h00000337;
        imem[58] = 32'hffd30313;
        imem[59] = 32'h0062a223;
        imem[60] = 32'h00000337;
        imem[61] = 32'h06430313;
        imem[62] = 32'h0062a423;
        imem[63] = 32'h0002a623;
        imem[64] = 32'h00000337;
        imem[65] = 32'hfce30313;
        imem[66] = 32'h0062a823;
        imem[67] = 32'h00000337;
        imem[68] = 32'h00730313;
        imem[69] = 32'h0062aa23;
        imem[70] = 32'h0062ac23;
        imem[71] = 32'h00000337;
        imem[72] = 32'h02a30313;
        imem[73] = 32'h0062ae23;
        imem[74] = 32'h00000437;
        imem[75] = 32'h00740413;
        imem[76] = 32'h000002b7;
        imem[77] = 32'h20028293;
        imem[78] = 32'h00040493;
        imem[79] = 32'h0002a303;
        imem[80] = 32'h0042a383;
        imem[81] = 32'h0063d663;
        imem[82] = 32'h0072a023;
        imem[83] = 32'h0062a223;
        imem[84] = 32'h00428293;
        imem[85] = 32'hfff48493;
        imem[86] = 32'hfe0492e3;
        imem[87] = 32'hfff40413;
        imem[88] = 32'hfc0418e3;
        imem[89] = 32'h20002303;
        imem[90] = 32'h000003b7;
        imem[91] = 32'hfce38393;
        imem[92] = 32'h20731663;
        imem[93] = 32'h21c02303;
        imem[94] = 32'h000003b7;
        imem[95] = 32'h06438393;
        imem[96] = 32'h1e731e63;
        imem[97] = 32'h000002b7;
        imem[98] = 32'h20028293;
        imem[99] = 32'h000004b7;
        imem[100] = 32'h00748493;
        imem[101] = 32'h0002a303;
        imem[102] = 32'h0042a383;
        imem[103] = 32'h1e63c063;
        imem[104] = 32'h00428293;
        imem[105] = 32'hfff48493;
        imem[106] = 32'hfe0496e3;
        imem[107] = 32'h000007b7;
        imem[108] = 32'h00478793;
        imem[109] = 32'h000002b7;
        imem[110] = 32'h30028293;
        imem[111] = 32'h80ff8337;
        imem[112] = 32'hf0130313;
        imem[113] = 32'h0062a023;
        imem[114] = 32'h00128383;
        imem[115] = 32'h00000537;
        imem[116] = 32'h07f50513;
        imem[117] = 32'h1aa39463;
        imem[118] = 32'h00228383;
        imem[119] = 32'h00000537;
        imem[120] = 32'hfff50513;
        imem[121] = 32'h18a39c63;
        imem[122] = 32'h0022c383;
        imem[123] = 32'h00000537;
        imem[124] = 32'h0ff50513;
        imem[125] = 32'h18a39463;
        imem[126] = 32'h00229383;
        imem[127] = 32'hffff8537;
        imem[128] = 32'h0ff50513;
        imem[129] = 32'h16a39c63;
        imem[130] = 32'h0022d383;
        imem[131] = 32'h00008537;
        imem[132] = 32'h0ff50513;
        imem[133] = 32'h16a39463;
        imem[134] = 32'h00000337;
        imem[135] = 32'h0ab30313;
        imem[136] = 32'h006280a3;
        imem[137] = 32'h00001337;
        imem[138] = 32'h23430313;
        imem[139] = 32'h00629123;
        imem[140] = 32'h0002a383;
        imem[141] = 32'h1234b537;
        imem[142] = 32'hb0150513;
        imem[143] = 32'h14a39063;
        imem[144] = 32'h000007b7;
        imem[145] = 32'h00578793;
        imem[146] = 32'h00000337;
        imem[147] = 32'hf0030313;
        imem[148] = 32'h40435393;
        imem[149] = 32'h00000537;
        imem[150] = 32'hff050513;
        imem[151] = 32'h12a39063;
        imem[152] = 32'h01c35393;
        imem[153] = 32'h00000537;
        imem[154] = 32'h00f50513;
        imem[155] = 32'h10a39863;
        imem[156] = 32'h000005b7;
        imem[157] = 32'h00358593;
        imem[158] = 32'h00b313b3;
        imem[159] = 32'h00000537;
        imem[160] = 32'h80050513;
        imem[161] = 32'h0ea39c63;
        imem[162] = 32'h40b353b3;
        imem[163] = 32'h00000537;
        imem[164] = 32'hfe050513;
        imem[165] = 32'h0ea39463;
        imem[166] = 32'h00b553b3;
        imem[167] = 32'h20000537;
        imem[168] = 32'hffc50513;
        imem[169] = 32'h0ca39c63;
        imem[170] = 32'h000323b3;
        imem[171] = 32'h0c038863;
        imem[172] = 32'h000333b3;
        imem[173] = 32'h0c039463;
        imem[174] = 32'hf0132393;
        imem[175] = 32'h0c038063;
        imem[176] = 32'h0045b393;
        imem[177] = 32'h0a038c63;
        imem[178] = 32'hfff5c393;
        imem[179] = 32'h00000537;
        imem[180] = 32'hffc50513;
        imem[181] = 32'h0aa39463;
        imem[182] = 32'h0705e393;
        imem[183] = 32'h05f3f393;
        imem[184] = 32'h00000537;
        imem[185] = 32'h05350513;
        imem[186] = 32'h08a39a63;
        imem[187] = 32'h406583b3;
        imem[188] = 32'h00000537;
        imem[189] = 32'h10350513;
        imem[190] = 32'h08a39263;
        imem[191] = 32'h0065c3b3;
        imem[192] = 32'h00b3e3b3;
        imem[193] = 32'h0063f3b3;
        imem[194] = 32'h00000537;
        imem[195] = 32'hf0050513;
        imem[196] = 32'h06a39663;
        imem[197] = 32'h06b36463;
        imem[198] = 32'h0665f263;
        imem[199] = 32'h00001397;
        imem[200] = 32'h00001537;
        imem[201] = 32'h32050513;
        imem[202] = 32'hffc50513;
        imem[203] = 32'h04a39863;
        imem[204] = 32'habcde3b7;
        imem[205] = 32'h00c3d393;
        imem[206] = 32'h000ac537;
        imem[207] = 32'hcde50513;
        imem[208] = 32'h02a39e63;
        imem[209] = 32'h000002b7;
        imem[210] = 32'h38828293;
        imem[211] = 32'h00028067;
        imem[212] = 32'h02c0006f;
        imem[213] = 32'h000002b7;
        imem[214] = 32'h00028293;
        imem[215] = 32'h0015f313;
        imem[216] = 32'h00030463;
        imem[217] = 32'h00a282b3;
        imem[218] = 32'h00151513;
        imem[219] = 32'h0015d593;
        imem[220] = 32'hfe0596e3;
        imem[221] = 32'h00028513;
        imem[222] = 32'h00008067;
        imem[223] = 32'h10078793;
        imem[224] = 32'h3ef02823;
        imem[225] = 32'h00000073;
        imem[226] = 32'h00000337;
        imem[227] = 32'h00130313;
        imem[228] = 32'h3e602823;
        imem[229] = 32'h00000073;
        // END PROGRAM
        errors = 0;
        cycle = 0;
        while (cycle < 3000 && !(halted === 1'b1)) begin
            @(negedge clk);
            if (cycle >= 2)
                $display("OUT %0d %h %b %h %h %b", cycle, imem_addr, dmem_wstrb,
                         (dmem_wstrb != 4'd0) ? dmem_addr : 32'd0,
                         (dmem_wstrb != 4'd0) ? dmem_wdata : 32'd0, halted);
            rst = (cycle < 2);
            cycle = cycle + 1;
        end
        @(negedge clk);
        for (i = 0; i < 16; i = i + 1) begin
            dbg_sel = i;
            #1 $display("OUT REG x%0d %h", i, dbg_data);
        end
        for (i = 0; i < 256; i = i + 1)
            if (dmem[i] != 32'd0)
                $display("OUT MEM %h %h", i * 4, dmem[i]);
        if (halted !== 1'b1) begin
            errors = errors + 1;
            $display("ERROR the program did not halt within %0d cycles", cycle);
        end
        if (dmem[8'hfc] !== 32'd1) begin
            errors = errors + 1;
            $display("ERROR the program reported %h (0x100 + failing test number)", dmem[8'hfc]);
        end
        if (errors == 0) $display("PASS rv32e halted after %0d cycles", cycle);
        else $display("FAIL rv32e: %0d errors", errors);
        $finish;
    end
endmodule
