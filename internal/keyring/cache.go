package keyring

import (
	"container/list"
	"sync"
)

// cache is a bounded LRU of unwrapped data keys.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used; values are *DataKey
	byID  map[DataKeyID]*list.Element
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), byID: make(map[DataKeyID]*list.Element)}
}

func (c *cache) get(id DataKeyID) (*DataKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*DataKey), true
}

func (c *cache) put(id DataKeyID, dk *DataKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[id]; ok {
		e.Value = dk
		c.order.MoveToFront(e)
		return
	}
	c.byID[id] = c.order.PushFront(dk)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(*DataKey).ID)
	}
}

func (c *cache) remove(id DataKeyID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[id]; ok {
		c.order.Remove(e)
		delete(c.byID, id)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
