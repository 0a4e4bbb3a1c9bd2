package keyring

// AuditKeyConversation is the reserved conversation name under which an org's audit keys are
// wrapped and stored with the data keys, as IndexKeyConversation is for the search index key. It
// is not a UUID, so no conversation has it; wrapped like a data key, it is re-wrapped by KEK
// rotation with the rest, and no retention step ever destroys it.
const AuditKeyConversation = "~audit"

// AuditKeyID names an org's audit key number n.
func AuditKeyID(org string, n int64) DataKeyID {
	return DataKeyID{Org: org, Conversation: AuditKeyConversation, N: n}
}

// PlainDataKey is a data key from raw bytes, for a store that runs without encryption at rest: it
// keeps such keys unwrapped beside the data, as it keeps its bodies.
func PlainDataKey(id DataKeyID, raw []byte) (*DataKey, error) { return newDataKey(id, raw) }
