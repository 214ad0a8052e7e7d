package clientlib

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/busd/busd/bus/wire"
)

// ErrHandedOver is returned by SingleInstance when another process owns
// the name: this launch's arguments and files were handed to it, and it
// acknowledged them. The caller should exit (successfully).
var ErrHandedOver = errors.New("bus: another instance runs; the arguments were handed to it")

// ErrOwnedByOtherUser is returned by SingleInstance when the name's owner
// runs as another user (uid) than this process: it is not this user's
// instance (a policy may let any user own any name), so the arguments and
// files are not handed to it.
var ErrOwnedByOtherUser = errors.New("bus: the name is owned by another user's connection")

// launchTopic is the topic, under the name's, on which the first instance
// takes later launches.
const launchTopic = "launch"

// maxLaunchTries is how many times SingleInstance asks for the name and
// finds an owner that takes no launch, before it gives up.
const maxLaunchTries = 5

// Launch is a later launch of the program, handed to the first instance:
// its arguments and files, and who sent them.
type Launch struct {
	Args  []string
	Files []*os.File // the Launch's to close
	PID   int        // the sender's pid, as the broker saw it
	UID   int

	msg *Msg
}

// Ack tells the later launch that its arguments were taken, so that it
// exits. Until then it waits (within its context).
func (l *Launch) Ack() error { return l.msg.Respond(nil) }

// launchBody is a launch request's payload.
type launchBody struct {
	Args []string `codec:"args"`
}

// Instance is the first instance of a program: it owns the name, and
// receives the launches after it.
type Instance struct {
	conn *Conn
	name string
	sub  *Subscription
}

// SingleInstance makes this process the one instance of a program named
// name, on conn. If no process owns the name, this one now does: the
// Instance returned delivers each later launch (Next). If another owns
// it, SingleInstance hands it args and files (for example a file to
// open) as a request to "_NAME.<name>.launch", waits for its Ack within
// ctx, and returns ErrHandedOver: this process should exit. If the owner
// goes away meanwhile, SingleInstance tries again to take the name. An
// owner that runs as another user is not handed anything:
// ErrOwnedByOtherUser (the broker routes the launch to whoever owns the
// name when it arrives, so a policy that lets other users own or queue
// for the name still leaves a moment, as the owner goes, where they may
// take it: keep your names to your uid in the policy).
func SingleInstance(ctx context.Context, conn *Conn, name string, args []string, files ...*os.File) (*Instance, error) {
	if err := wire.ValidName(name); err != nil {
		return nil, err
	}
	topic := wire.NamePrefix + name + "." + launchTopic
	// Subscribed before the name is asked for: the first launch to come
	// once this process owns it reaches the subscription.
	sub, err := conn.SubscribeSync(topic)
	if err != nil {
		return nil, err
	}
	body, _ := wire.AppendBody(nil, &launchBody{Args: args}) // strings: it cannot fail
	for tries := 1; ; tries++ {
		r, err := conn.requestName(ctx, name, DoNotQueue)
		if err != nil {
			sub.Unsubscribe()
			return nil, err
		}
		if res := NameResult(r.Result); res == PrimaryOwner || res == AlreadyOwner {
			return &Instance{conn: conn, name: name, sub: sub}, nil
		}
		if o := r.Owner; o != nil && int(o.UID) != os.Geteuid() {
			sub.Unsubscribe()
			return nil, fmt.Errorf("%w: %q is owned by uid %d (pid %d), this process runs as uid %d", ErrOwnedByOtherUser, name, o.UID, o.PID, os.Geteuid())
		}
		_, err = conn.Request(ctx, topic, body, files...)
		switch {
		case err == nil:
			sub.Unsubscribe()
			return nil, ErrHandedOver
		case !errors.Is(err, ErrNoResponders):
			sub.Unsubscribe()
			return nil, fmt.Errorf("bus: handing the arguments to the instance owning %q: %w", name, err)
		}
		// The owner went away, or does not take launches: ask again, a
		// few times.
		if err := ctx.Err(); err != nil || tries == maxLaunchTries {
			sub.Unsubscribe()
			return nil, fmt.Errorf("bus: the owner of %q takes no launches: %w", name, cmp.Or(err, ErrNoResponders))
		}
	}
}

// Name returns the name the instance owns.
func (i *Instance) Name() string { return i.name }

// Next waits for the next later launch. Ack it once its arguments are
// taken.
func (i *Instance) Next(ctx context.Context) (*Launch, error) {
	for {
		m, err := i.sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		var b launchBody
		if err := wire.DecodeBody(m.Data, &b); err != nil || m.Reply == "" {
			m.CloseFiles()
			continue // not a launch: dropped
		}
		return &Launch{Args: b.Args, Files: m.Files, PID: m.Origin.PID, UID: m.Origin.UID, msg: m}, nil
	}
}

// Close gives the name up, and stops taking launches.
func (i *Instance) Close(ctx context.Context) error {
	i.sub.Unsubscribe()
	_, err := i.conn.ReleaseName(ctx, i.name)
	return err
}
