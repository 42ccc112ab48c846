package processor

// workers runs the processor's short-lived tasks (a key's queue, a step's
// call, a handling's stop watch) on goroutines kept for reuse. A step's
// call runs deep (HTTP client, JSON, logging) and grows its goroutine's
// stack; a new goroutine for every call would grow, and copy, its stack
// each time. A task goes to an idle worker if one waits, else to a new
// goroutine, which stays as a worker when the task ends; close ends the
// idle ones. The runtime shrinks the stacks of workers that stay idle.
type workers struct {
	tasks chan func()
	quit  chan struct{}
}

func newWorkers() *workers {
	return &workers{tasks: make(chan func()), quit: make(chan struct{})}
}

// Go runs f on a worker.
func (w *workers) Go(f func()) {
	if w == nil { // a processor made by hand in a test
		go f()
		return
	}
	select {
	case w.tasks <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	for {
		f()
		select {
		case f = <-w.tasks:
		case <-w.quit:
			return
		}
	}
}

// close ends the idle workers, and each busy one when its task ends; a
// task given after it runs on a goroutine of its own.
func (w *workers) close() { close(w.quit) }
