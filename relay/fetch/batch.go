package fetch

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// batch is how many messages one UID FETCH asks for.
const batch = 100

// maxPending bounds the fetched bytes held while their writes are under way:
// past it, the poller waits for them before reading the next message.
const maxPending = 64 << 20

// dieClassifying is a TEST-ONLY hook for relay/e2e, never set in
// production: when SESAM_RELAY_TEST_DIE_CLASSIFYING holds a string, the
// process kills itself (SIGKILL) while reading a fetched message whose
// Subject contains it, as an out-of-memory kill or a crash in the
// classifier would.
var dieClassifying = os.Getenv("SESAM_RELAY_TEST_DIE_CLASSIFYING")

// unread is the verdict on a message that stopped the relay while it was
// being read: it is stored and served, not read again.
var unread = sesam.Inbound{Class: sesam.Unknown, Why: "the relay stopped while reading this message; stored without reading it"}

type batchMode int

const (
	whole    batchMode = iota // one mark for the batch
	single                    // one message, marked alone
	poisoned                  // the message marked alone when the relay stopped: not read
)

// fetchUIDs fetches a folder's new UIDs in batches. A poison mark left by a
// stop goes first: the UIDs of that batch are fetched one at a time, each
// under its own mark, and the one found marked alone is stored unread.
func (p *Poller) fetchUIDs(ctx context.Context, c *imapclient.Client, folder string, uv uint32, uids []imap.UID, res *Result) error {
	mark, found, err := p.st.MarkFound(p.acct.Name, folder)
	if err != nil {
		return err
	}
	if found {
		var rest []imap.UID
		for _, u := range uids {
			if mark.UIDValidity != uv || uint32(u) < mark.Lo || uint32(u) > mark.Hi {
				rest = append(rest, u)
				continue
			}
			mode := single
			if mark.Single && uint32(u) == mark.Lo {
				mode = poisoned
			}
			if err := p.fetchBatch(ctx, c, folder, uv, []imap.UID{u}, res, mode); err != nil {
				return err
			}
		}
		hi, muv := mark.Hi, mark.UIDValidity
		if muv != uv {
			hi = 0
		}
		// A mark left by a failed write is replaced by the next batch's.
		p.st.DoneClassifying(context.WithoutCancel(ctx), p.acct.Name, folder, muv, hi)
		uids = rest
	}
	for i := 0; i < len(uids); i += batch {
		if err := p.fetchBatch(ctx, c, folder, uv, uids[i:min(i+batch, len(uids))], res, whole); err != nil {
			return err
		}
	}
	return nil
}

// fetchBatch fetches some UIDs and stores each complete message. Their
// sizes come first: a message over max_fetch_size is left at the provider.
// The batch is marked (store.MarkClassifying) before its first message is
// read; the writes go out together (one group commit, store.AddMailAsync)
// and are all waited for before the mark is cleared and the next batch
// starts: a message cut in the middle is never stored, and the sync
// position never passes a message that is not stored or deliberately left
// upstream.
func (p *Poller) fetchBatch(ctx context.Context, c *imapclient.Client, folder string, uv uint32, uids []imap.UID, res *Result, mode batchMode) (err error) {
	host := p.acct.Upstream.IMAP.Host
	defer func() {
		hi := uint32(uids[len(uids)-1])
		if err != nil {
			hi = 0 // the process lives: clear the mark, keep the position
		}
		// Even after the poll's end: a mark left behind only costs the
		// next poll a message-by-message pass, but nothing is gained by it.
		p.st.DoneClassifying(context.WithoutCancel(ctx), p.acct.Name, folder, uv, hi)
	}()
	want, err := p.fitting(c, folder, uids)
	if err != nil || len(want) == 0 {
		return err
	}
	if mode != poisoned {
		if err := p.st.MarkClassifying(ctx, p.acct.Name, folder, store.Classifying{UIDValidity: uv, Lo: uint32(uids[0]), Hi: uint32(uids[len(uids)-1]), Single: mode == single}); err != nil {
			return fmt.Errorf("marking messages of %s before reading them: %w", folder, err)
		}
	}
	section := &imap.FetchItemBodySection{Peek: true}
	cmd := c.Fetch(imap.UIDSetNum(want...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	type stored struct {
		added store.Added
		done  *store.Pending
	}
	var pending []*stored
	held := 0
	// wait waits for every write sent, whatever ctx says: withdrawing one
	// while a later one commits would move the sync position past a
	// message never stored.
	wait := func() error {
		var first error
		for _, w := range pending {
			if err := w.done.Wait(context.WithoutCancel(ctx)); err != nil {
				if first == nil {
					first = fmt.Errorf("storing a fetched message: %w", err)
				}
				continue
			}
			if w.added.Duplicate {
				res.Duplicates++
			} else {
				res.Fetched++
			}
		}
		pending, held = nil, 0
		return first
	}
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		var uid imap.UID
		var body []byte
		var readErr error
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				body, readErr = p.readBody(folder, uid, it.Literal)
			}
		}
		if readErr != nil {
			cmd.Close()
			wait()
			return classify("FETCH in "+folder, host, readErr, true)
		}
		if uid == 0 || body == nil {
			continue
		}
		in := unread
		if mode == poisoned {
			p.log.Warn("imap message stopped the relay while it was read; stored without reading it", "folder", folder, "uid", uid)
			p.notes = append(p.notes, fmt.Sprintf("message UID %d in %s stopped the relay while it was read: stored without reading it (class unknown), served as usual", uid, folder))
		} else {
			in = p.verdict(body)
		}
		w := new(stored)
		w.done = p.st.AddMailAsync(p.acct.Name, store.Origin{Kind: store.Fetched, Folder: folder, UIDValidity: uv, UID: uint32(uid)}, body, &in, &w.added)
		pending = append(pending, w)
		if held += len(body); held > maxPending {
			if err := wait(); err != nil {
				cmd.Close()
				return err
			}
		}
	}
	err = cmd.Close()
	if werr := wait(); werr != nil {
		return werr
	}
	if err != nil {
		return classify("FETCH in "+folder, host, err, true)
	}
	return nil
}

// readBody reads a message's literal whole, in one allocation of its
// announced size. fitting has checked RFC822.SIZE against max_fetch_size; a
// literal larger than that is left upstream too (nil, no error).
func (p *Poller) readBody(folder string, uid imap.UID, lit imap.LiteralReader) ([]byte, error) {
	if lit == nil {
		return nil, nil
	}
	if max := int64(p.acct.Upstream.MaxFetchSize); lit.Size() > max {
		// RFC822.SIZE said less: drop it as it streams by, keep nothing.
		_, err := io.Copy(io.Discard, lit)
		p.tooBig(folder, uid, lit.Size())
		return nil, err
	}
	body := make([]byte, lit.Size())
	n, err := io.ReadFull(lit, body)
	// go-imap ends a literal with a plain EOF when the connection drops:
	// only the announced size tells a whole message.
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = fmt.Errorf("message UID %d cut after %d of %d bytes", uid, n, lit.Size())
	}
	return body, err
}

// fitting asks the sizes of some UIDs (RFC822.SIZE) and returns those
// within max_fetch_size. The others are left at the provider, said once in
// status and the log: the sync position passes them, they are not asked
// for again.
func (p *Poller) fitting(c *imapclient.Client, folder string, uids []imap.UID) ([]imap.UID, error) {
	max := int64(p.acct.Upstream.MaxFetchSize)
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return nil, classify("FETCH RFC822.SIZE in "+folder, p.acct.Upstream.IMAP.Host, err, true)
	}
	var want []imap.UID
	var need int64
	for _, m := range msgs {
		if m.RFC822Size <= max {
			want = append(want, m.UID)
			need += m.RFC822Size
			continue
		}
		p.tooBig(folder, m.UID, m.RFC822Size)
	}
	// Mail from the Internet must not take the room the practice's lots
	// need: what would leave less than the reserve stays at the provider,
	// and the poll fails (status says why) until space is freed.
	if free, minFree, ok := p.st.RoomToFetch(need); !ok {
		return nil, upstream.LocalError("checking free space", fmt.Errorf("the disk is almost full (%s free, %s of new mail waiting, min_free_space %s kept twice over for the lots): returns are left at the provider until space is freed on %s",
			megabytes(int64(free)), megabytes(need), megabytes(int64(minFree)), p.st.Dir()))
	}
	return want, nil
}

// tooBig says, in the log and in status, that a message is left upstream.
func (p *Poller) tooBig(folder string, uid imap.UID, size int64) {
	max := int64(p.acct.Upstream.MaxFetchSize)
	p.log.Warn("imap message over max_fetch_size left at the provider", "folder", folder, "uid", uid, "size", size, "max_fetch_size", max)
	p.notes = append(p.notes, fmt.Sprintf("message UID %d in %s (%s) is over max_fetch_size (%s): left at the provider, read it in the webmail or raise max_fetch_size", uid, folder, megabytes(size), megabytes(max)))
}

func megabytes(n int64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/(1<<20)), ".0") + " MB"
}

// verdict reads a fetched message (sesam.Classify, with the config's
// rules), outside any write, under the batch's mark.
func (p *Poller) verdict(body []byte) sesam.Inbound {
	if dieClassifying != "" && strings.Contains(sesam.ReadHeaders(body).Subject, dieClassifying) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	return p.st.Classify(body)
}
