package daemon

import (
	"errors"
	"net"
	"testing"
	"time"
)

// A reload closes the old servers' view of a socket, never the socket: a
// client connecting during or after the switch reaches the new server.
func TestClosingAViewLeavesTheSocketToTheNextView(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := share(l)
	defer s.close()
	old := s.view()
	old.Close()
	if _, err := old.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a closed view accepted: %v", err)
	}

	next := s.view()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := next.Accept()
		if err == nil {
			got <- c
		}
	}()
	c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
	if err != nil {
		t.Fatalf("the socket closed with its first view: %v", err)
	}
	defer c.Close()
	select {
	case sc := <-got:
		sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the next view never got the connection")
	}
	if next.Addr().String() != l.Addr().String() {
		t.Fatalf("view address %s, socket %s", next.Addr(), l.Addr())
	}
}

// Closing the socket itself (a listener removed from the config, or the
// stop) ends every view's Accept.
func TestClosingTheSocketEndsEveryView(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := share(l)
	v := s.view()
	done := make(chan error, 1)
	go func() { _, err := v.Accept(); done <- err }()
	s.close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after the socket closed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits after the socket closed")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Fatal("the socket still accepts after close")
	}
}
