package app

import (
	"bytes"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/madoguchi/madoguchi/constituency"
)

// Constituents is the loaded constituency: the constituents to match and
// the keys of the contacts that have a key file.
type Constituents struct {
	Set  *constituency.Set
	keys map[string]openpgp.EntityList // contact address → its key file's keys
}

// ContactKey implements notify.ContactKey: the contact's keys able to
// encrypt at now, and whether it has a key file at all.
func (c *Constituents) ContactKey(addr string, now time.Time) (openpgp.EntityList, bool) {
	el, ok := c.keys[addr]
	if !ok {
		return nil, false
	}
	var out openpgp.EntityList
	for _, e := range el {
		if _, can := e.EncryptionKey(now); can {
			out = append(out, e)
		}
	}
	return out, true
}

// LoadConstituents reads constituency.file, its contacts' key files and
// constituency.asn_file; with no file it is an empty constituency. Every
// problem is a usage error naming the file.
func (e *Env) LoadConstituents() (*Constituents, error) {
	c := e.Cfg.Constituency
	out := &Constituents{keys: map[string]openpgp.EntityList{}}
	if c.File == "" {
		out.Set, _ = constituency.New(nil, nil)
		return out, nil
	}
	b, err := os.ReadFile(c.File)
	if err != nil {
		return nil, UsageErr("%s: cannot read (constituency.file): %v", c.File, UnwrapPathErr(err))
	}
	cs, err := constituency.Parse(c.File, b)
	if err != nil {
		return nil, UsageErr("%v", err)
	}
	constituency.ResolveKeyFiles(cs, filepath.Dir(c.File))
	var table *constituency.ASNTable
	if c.ASNFile != "" {
		tb, err := os.ReadFile(c.ASNFile)
		if err != nil {
			return nil, UsageErr("%s: cannot read (constituency.asn_file): %v", c.ASNFile, UnwrapPathErr(err))
		}
		if table, err = constituency.ParseASNTable(c.ASNFile, tb); err != nil {
			return nil, UsageErr("%v", err)
		}
	}
	if out.Set, err = constituency.New(cs, table); err != nil {
		return nil, UsageErr("%s: %v", c.File, err)
	}
	for _, con := range cs {
		for _, ct := range con.Contacts {
			if ct.KeyFile == "" {
				continue
			}
			kb, err := os.ReadFile(ct.KeyFile)
			if err != nil {
				return nil, UsageErr("%s: cannot read (key_file of %s in %s): %v", ct.KeyFile, ct.Address, c.File, UnwrapPathErr(err))
			}
			el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(kb))
			if err != nil {
				el, err = openpgp.ReadKeyRing(bytes.NewReader(kb))
			}
			if err != nil || len(el) == 0 {
				return nil, UsageErr("%s: no OpenPGP public key (key_file of %s in %s)", ct.KeyFile, ct.Address, c.File)
			}
			out.keys[ct.Address] = append(out.keys[ct.Address], el...)
		}
	}
	return out, nil
}
