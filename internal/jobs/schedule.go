package jobs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when a job runs.
type Schedule interface {
	// First is when the first run is due for a runner that starts, or takes the lead, at t.
	First(t time.Time) time.Time
	// Next is when the run after one that started or ended at t is due.
	Next(t time.Time) time.Time
	String() string
}

// Interval runs a job a fixed time after the previous run ended.
type Interval struct {
	every, first time.Duration
}

// Every returns the schedule that runs a job every d (d > 0), the first time d after start.
func Every(d time.Duration) Interval { return Interval{every: d, first: d} }

// StartAfter returns the schedule with its first run delay after start (or takeover) instead of
// a whole interval, but never later than one interval.
func (i Interval) StartAfter(delay time.Duration) Interval {
	i.first = max(0, min(delay, i.every))
	return i
}

// First implements Schedule.
func (i Interval) First(t time.Time) time.Time { return t.Add(i.first) }

// Next implements Schedule.
func (i Interval) Next(t time.Time) time.Time { return t.Add(i.every) }

func (i Interval) String() string { return "every " + i.every.String() }

// cronSchedule runs a job at the times of a cron expression.
type cronSchedule struct {
	spec string
	s    cron.Schedule
}

// Cron parses a standard 5-field cron expression ("0 3 * * *") or a descriptor (@daily, @hourly,
// @every 6h), in local time unless it starts with CRON_TZ=Zone.
func Cron(spec string) (Schedule, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("empty cron expression")
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("parse cron expression: %w", err)
	}
	return cronSchedule{spec: spec, s: s}, nil
}

// First implements Schedule.
func (c cronSchedule) First(t time.Time) time.Time { return c.Next(t) }

// Next implements Schedule. The clock's time may be in UTC; the expression's hours are local.
func (c cronSchedule) Next(t time.Time) time.Time { return c.s.Next(t.Local()) }

func (c cronSchedule) String() string { return c.spec }
