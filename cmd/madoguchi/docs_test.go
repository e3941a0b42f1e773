package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestMetricsCatalogue: every madoguchi_* metric the code registers is in
// docs/metrics.md, and every one the alert rules and the dashboard query
// exists, so the catalogue and the deploy files cannot drift from the code.
func TestMetricsCatalogue(t *testing.T) {
	registered := map[string]bool{}
	nameRE := regexp.MustCompile(`"(madoguchi_[a-z0-9_]+)"`)
	err := filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, m := range nameRE.FindAllStringSubmatch(string(b), -1) {
			if strings.Contains(string(b), "Name: \""+m[1]+"\"") || strings.Contains(string(b), "NewDesc(\""+m[1]+"\"") {
				registered[m[1]] = true
			}
		}
		return nil
	})
	if err != nil || len(registered) < 10 {
		t.Fatalf("found %d metrics: %v", len(registered), err)
	}
	doc, _ := os.ReadFile("../../docs/metrics.md")
	for m := range registered {
		if !strings.Contains(string(doc), "`"+m+"`") {
			t.Errorf("docs/metrics.md lacks %s", m)
		}
	}
	rules, _ := os.ReadFile("../../deploy/prometheus-alerts.yml")
	var parsed struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &parsed); err != nil || len(parsed.Groups) == 0 {
		t.Fatalf("alert rules: %v", err)
	}
	dash, _ := os.ReadFile("../../deploy/grafana-dashboard.json")
	used := regexp.MustCompile(`madoguchi_[a-z0-9_]+`).FindAllString(string(rules)+string(dash), -1)
	for _, m := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
		if !registered[base] {
			t.Errorf("deploy files query %s, which the code does not register", m)
		}
	}
}
