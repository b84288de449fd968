package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

const sampleStatus = "Name:\tse\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1300000 kB\nVmSize:\t 1290000 kB\n" +
	"VmLck:\t       0 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   13100 kB\nRssAnon:\t    5000 kB\nThreads:\t7\n"

func TestParseProcStatus(t *testing.T) {
	m, err := parseProcStatus(sampleStatus)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 13100<<10 || m.Peak != 20480<<10 {
		t.Fatalf("got %+v, want RSS %d and peak %d bytes", m, 13100<<10, 20480<<10)
	}
}

func TestParseProcStatusRejects(t *testing.T) {
	for name, text := range map[string]string{
		"no RSS":       "VmHWM:\t 10 kB\n",
		"no HWM":       "VmRSS:\t 10 kB\n",
		"empty":        "",
		"wrong unit":   "VmHWM:\t 10 MB\nVmRSS:\t 10 kB\n",
		"no unit":      "VmHWM:\t 10\nVmRSS:\t 10 kB\n",
		"negative":     "VmHWM:\t -10 kB\nVmRSS:\t 10 kB\n",
		"not a number": "VmHWM:\t ten kB\nVmRSS:\t 10 kB\n",
		"huge":         "VmHWM:\t 99999999999999999 kB\nVmRSS:\t 10 kB\n",
	} {
		if m, err := parseProcStatus(text); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, m)
		}
	}
}

// TestReadMemSelf reads this test process's own status: the kernel's real format.
func TestReadMemSelf(t *testing.T) {
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("implausible memory of this process: %+v", m)
	}
}

// FuzzParseProcStatus: never panics; a success means both lines were present and the
// values are whole KiB; formatting the result back parses to the same values.
func FuzzParseProcStatus(f *testing.F) {
	f.Add(sampleStatus)
	f.Add("VmRSS:\t1 kB\nVmHWM:\t2 kB")
	f.Add("VmRSS: 1 kB\nVmRSS: 2 kB\nVmHWM: 3 kB\n")
	f.Add("VmHWM:\t 10 MB\nVmRSS:\t 10 kB\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseProcStatus(text)
		if err != nil {
			return
		}
		if m.RSS < 0 || m.Peak < 0 || m.RSS%1024 != 0 || m.Peak%1024 != 0 {
			t.Fatalf("parsed %+v from %q", m, text)
		}
		if !strings.Contains(text, "VmRSS:") || !strings.Contains(text, "VmHWM:") {
			t.Fatalf("parsed %+v from text without both keys: %q", m, text)
		}
		again, err := parseProcStatus(fmt.Sprintf("VmHWM:\t%d kB\nVmRSS:\t%d kB\n", m.Peak>>10, m.RSS>>10))
		if err != nil || again != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, again, err)
		}
	})
}
