package parse

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"net/netip"
	"strings"
)

// parseFields reads "Key: value" lines (RFC 5322 style, with folding).
func parseFields(txt string) map[string]string {
	f := map[string]string{}
	last := ""
	for _, l := range strings.Split(strings.ReplaceAll(txt, "\r\n", "\n"), "\n") {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && last != "" {
			f[last] += " " + strings.TrimSpace(l)
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.ContainsAny(k, " \t") {
			continue
		}
		last = strings.ToLower(k)
		if _, dup := f[last]; !dup {
			f[last] = strings.TrimSpace(v)
		}
	}
	return f
}

// parseARF reads a message/feedback-report part (RFC 5965).
// sourceIP accepts a structured report's source address (or CIDR range)
// only when it is one, in its canonical form: a report field is
// sender-controlled text like any other.
func sourceIP(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap().String(), true
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked().String(), true
	}
	return "", false
}

func parseARF(txt string) *Structured {
	f := parseFields(txt)
	s := &Structured{Format: "arf", Fields: map[string]string{}}
	for _, k := range []string{"feedback-type", "user-agent", "version", "original-mail-from", "original-rcpt-to", "arrival-date", "source-ip", "reported-domain", "reported-uri", "incidents", "reporting-mta"} {
		if v, ok := f[k]; ok {
			s.Fields[k] = v
		}
	}
	if ip, ok := sourceIP(f["source-ip"]); ok {
		s.SourceIPs = append(s.SourceIPs, ip)
	}
	if d := f["arrival-date"]; d != "" {
		s.Timestamps = append(s.Timestamps, d)
	}
	s.scan = strings.Join([]string{f["source-ip"], f["reported-domain"], f["reported-uri"], strings.Trim(f["original-mail-from"], "<>")}, "\n")
	s.text = txt
	return s
}

// parseXARF reads an X-ARF report part (version 0.1 "Key: value" style or
// 0.2 YAML; both are key: value lines at the top level).
func parseXARF(txt string) *Structured {
	// Without a Report-Type field (any case) it is no X-ARF report; most
	// text parts are not, and are not read line by line as fields.
	if !containsFoldASCII(txt, "report-type") {
		return nil
	}
	f := parseFields(txt)
	if f["report-type"] == "" || (f["category"] == "" && f["schema-url"] == "") {
		return nil
	}
	s := &Structured{Format: "x-arf", Fields: map[string]string{}}
	for k, v := range f {
		if k != "schema-url" {
			s.Fields[k] = v
		}
	}
	if ip, ok := sourceIP(f["source"]); ok {
		s.SourceIPs = append(s.SourceIPs, ip)
	}
	if d := f["date"]; d != "" {
		s.Timestamps = append(s.Timestamps, d)
	}
	s.scan = strings.Join([]string{f["source"], f["destination"], f["url"], f["domain"]}, "\n")
	s.text = txt
	return s
}

// parseIODEF reads an IODEF (RFC 7970, or RFC 5070) document. The XML
// decoder resolves no external entities; input is capped at 4 MiB.
func parseIODEF(data []byte) *Structured {
	if len(data) > 4<<20 || !bytes.Contains(data, []byte("IODEF-Document")) {
		return nil
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = false
	d.Entity = map[string]string{}
	s := &Structured{Format: "iodef", Fields: map[string]string{}}
	var stack []xml.StartElement
	var lines []string
	systemCat := ""
	for n := 0; n < 200000; n++ {
		tok, err := d.Token()
		if err == io.EOF || err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t)
			attr := func(name string) string {
				for _, a := range t.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			switch t.Name.Local {
			case "Incident":
				if v := attr("purpose"); v != "" {
					s.Fields["purpose"] = v
				}
				if v := attr("restriction"); v != "" {
					s.Fields["restriction"] = v
				}
			case "IODEF-Document":
				if v := attr("restriction"); v != "" && s.Fields["restriction"] == "" {
					s.Fields["restriction"] = v
				}
			case "IncidentID":
				s.Fields["incident_id_name"] = attr("name")
			case "System":
				systemCat = attr("category")
			}
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) == 0 {
				continue
			}
			v := strings.TrimSpace(string(t))
			if v == "" {
				continue
			}
			el := stack[len(stack)-1]
			switch el.Name.Local {
			case "IncidentID":
				s.Fields["incident_id"] = v
			case "Description":
				if s.Fields["description"] == "" {
					s.Fields["description"] = v
				}
				lines = append(lines, "Description: "+v)
			case "SystemImpact":
			case "Address", "Name", "URL", "DomainName", "EmailTo", "Email":
				lines = append(lines, el.Name.Local+": "+v)
				if el.Name.Local == "Address" && systemCat == "source" {
					if ip, ok := sourceIP(v); ok {
						s.SourceIPs = append(s.SourceIPs, ip)
					}
				}
			case "DetectTime", "StartTime", "EndTime", "ReportTime":
				s.Timestamps = append(s.Timestamps, v)
			case "DigestValue":
				if h := hexFromBase64(v); h != "" {
					lines = append(lines, "Hash: "+h)
				}
			case "HashValue", "Value":
				lines = append(lines, "Hash: "+v)
			}
		}
	}
	if s.Fields["incident_id"] == "" && len(lines) == 0 {
		return nil
	}
	s.scan = strings.Join(lines, "\n")
	s.text = "IODEF " + s.Fields["incident_id"] + "\n" + s.scan
	return s
}

// parseCSVFeed reads a CSV feed of the Shadowserver kind: a header row with
// an "ip" (or src_ip) column, optionally a "timestamp" column.
func parseCSVFeed(txt string) *Structured {
	r := csv.NewReader(strings.NewReader(txt))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	head, err := r.Read()
	if err != nil {
		return nil
	}
	ipCol, tsCol := -1, -1
	for i, h := range head {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "ip", "src_ip", "source_ip", "ip_address", "src":
			ipCol = i
		case "timestamp", "time", "date", "first_seen":
			tsCol = i
		}
	}
	if ipCol < 0 {
		return nil
	}
	s := &Structured{Format: "csv", Fields: map[string]string{"columns": strings.Join(head, ",")}}
	for n := 0; n < 100000; n++ {
		rec, err := r.Read()
		if err != nil {
			break
		}
		if ipCol < len(rec) {
			if ip, ok := sourceIP(rec[ipCol]); ok {
				s.SourceIPs = append(s.SourceIPs, ip)
			}
		}
		if tsCol >= 0 && tsCol < len(rec) && len(s.Timestamps) < 1000 {
			s.Timestamps = append(s.Timestamps, rec[tsCol])
		}
	}
	return s
}
