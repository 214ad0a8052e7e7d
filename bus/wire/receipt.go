package wire

import (
	"encoding/binary"
	"fmt"
)

// ReceiptLen is the size of a RECEIPT's payload.
const ReceiptLen = 8

// Receipt is what the broker says about a PUB that asked for one (a PUB
// with an id): Delivered is how many subscriptions a MSG for it was queued
// for (a queue group counts once, for the member that got it), Dropped how
// many matched but lost it for want of room (their subscribers get a gap
// notice). Both are 0 for a PUB the broker refused (its ERR comes first)
// and for a broker request, which the broker answers itself.
type Receipt struct {
	Delivered uint32
	Dropped   uint32
}

// AppendReceipt appends a RECEIPT answering the PUB whose id was id.
func AppendReceipt(dst []byte, id uint32, r Receipt) []byte {
	h := Header{Op: OpReceipt, ID: id, PayloadLen: ReceiptLen}
	dst = AppendFrameHeader(dst, &h)
	dst = binary.BigEndian.AppendUint32(dst, r.Delivered)
	return binary.BigEndian.AppendUint32(dst, r.Dropped)
}

// DecodeReceipt decodes a RECEIPT's payload.
func DecodeReceipt(payload []byte) (Receipt, error) {
	if len(payload) != ReceiptLen {
		return Receipt{}, Errorf(CodeBadFrame, "RECEIPT payload of %d bytes, not %d", len(payload), ReceiptLen)
	}
	return Receipt{Delivered: binary.BigEndian.Uint32(payload), Dropped: binary.BigEndian.Uint32(payload[4:])}, nil
}

// String describes r as a publisher would want it said.
func (r Receipt) String() string {
	return fmt.Sprintf("delivered to %d subscriptions, dropped by %d", r.Delivered, r.Dropped)
}
