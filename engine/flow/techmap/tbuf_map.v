// Maps Yosys' tri-state buffer ($_TBUF_: Y = E ? A : 'z) onto the library's TBUFX1, which inverts
// (Y = EN ? !A : 'z): the input goes through a $_NOT_ that abc maps (and merges with upstream logic).
// Without this, synth treats 'z as don't-care and the enable is silently lost.
module \$_TBUF_ (input A, input E, output Y);
  wire a_n;
  \$_NOT_ inv (.A(A), .Y(a_n));
  TBUFX1 _TECHMAP_REPLACE_ (.A(a_n), .EN(E), .Y(Y));
endmodule
