package smtpd_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/internal/testscript"
)

// runDialogue plays a script against addr. Lines:
//
//	c -> TEXT        send TEXT and CRLF
//	c => EXPR        send raw bytes: Go-quoted strings joined by +, N*"s" repeats
//	c <~ PREFIX      read one whole reply; one of its lines must start with PREFIX
//	                 ("250-SIZE" lines are read as "250 SIZE")
//	c <- EOF         the server must close the connection
//	-- reconnect     open a new connection
func runDialogue(t *testing.T, addr, path string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	var r *bufio.Reader
	dial := func() {
		if conn != nil {
			conn.Close()
		}
		conn, err = net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		r = bufio.NewReader(conn)
	}
	dial()
	defer func() { conn.Close() }()
	for n, line := range strings.Split(string(src), "\n") {
		where := fmt.Sprintf("%s:%d", filepath.Base(path), n+1)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "-- reconnect":
			dial()
		case strings.HasPrefix(line, "c -> "):
			if _, err := conn.Write([]byte(line[5:] + "\r\n")); err != nil {
				t.Fatalf("%s: write: %v", where, err)
			}
		case strings.HasPrefix(line, "c => "):
			if _, err := conn.Write([]byte(testscript.MustExpr(t, where, line[5:]))); err != nil {
				t.Fatalf("%s: write: %v", where, err)
			}
		case line == "c <- EOF":
			if l, err := r.ReadString('\n'); err == nil {
				t.Fatalf("%s: want the connection closed, got %q", where, l)
			}
		case strings.HasPrefix(line, "c <~ "):
			want := line[5:]
			var got []string
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("%s: want %q, read error %v after %q", where, want, err, got)
				}
				l = strings.TrimRight(l, "\r\n")
				got = append(got, l)
				if len(l) < 4 || l[3] != '-' {
					break
				}
			}
			ok := false
			for _, l := range got {
				if len(l) >= 4 {
					l = l[:3] + " " + l[4:]
				}
				ok = ok || strings.HasPrefix(l, want)
			}
			if !ok {
				t.Fatalf("%s: want a reply starting %q, got %q", where, want, got)
			}
		default:
			t.Fatalf("%s: cannot read script line %q", where, line)
		}
	}
}

func TestDialogues(t *testing.T) {
	files, _ := filepath.Glob("testdata/dialogues/*.txt")
	if len(files) == 0 {
		t.Fatal("no dialogue scripts")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			s := newServer(t, func(o *serverOpts) { o.maxSize = 4096 })
			runDialogue(t, s.addr, f)
		})
	}
}
