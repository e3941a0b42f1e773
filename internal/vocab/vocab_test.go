package vocab

import "testing"

func TestTicket(t *testing.T) {
	tk := Ticket{Prefix: "CSIRT", Year: 2026, Seq: 123}
	if tk.String() != "CSIRT#2026-000123" || tk.Slug() != "csirt-2026-000123" {
		t.Fatalf("%s %s", tk, tk.Slug())
	}
	if got, ok := ParseTicket("CSIRT#2026-000123"); !ok || got != tk {
		t.Fatalf("parse: %+v %v", got, ok)
	}
	for _, bad := range []string{"", "CSIRT#2026", "CSIRT 2026-000123", "x CSIRT#2026-000123", "CSIRT#2026-000123 x"} {
		if _, ok := ParseTicket(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
	if got, ok := FindTicket("Re: [csirt#2026-000123] phishing", "CSIRT"); !ok || got != tk {
		t.Fatalf("find: %+v %v", got, ok)
	}
	if _, ok := FindTicket("Re: [OTHER#2026-000123]", "CSIRT"); ok {
		t.Fatal("found another prefix's ticket")
	}
}

func TestStatusAndTLP(t *testing.T) {
	for _, st := range Statuses {
		if got, ok := ParseStatus(string(st)); !ok || got != st {
			t.Errorf("status %s", st)
		}
	}
	if _, ok := ParseStatus("closed"); ok {
		t.Error("closed is no status")
	}
	for in, want := range map[string]TLP{"TLP:RED": TLPRed, "amber+strict": TLPAmberStrict, "white": TLPClear, " Green ": TLPGreen} {
		if got, ok := ParseTLP(in); !ok || got != want {
			t.Errorf("%q: %q %v", in, got, ok)
		}
	}
	if _, ok := ParseTLP("purple"); ok {
		t.Error("purple is no TLP")
	}
	if !(TLPRed.Rank() > TLPAmberStrict.Rank() && TLPAmberStrict.Rank() > TLPAmber.Rank() && TLPAmber.Rank() > TLPGreen.Rank() && TLPGreen.Rank() > TLPClear.Rank()) {
		t.Error("ranks out of order")
	}
}
