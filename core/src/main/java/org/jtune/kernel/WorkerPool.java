package org.jtune.kernel;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * A persistent pool of worker threads. {@link #run} splits {@code [0, n)} into contiguous chunks, gives
 * each thread an equal run of consecutive chunks (static partitioning: a thread reads its rows of a
 * weight matrix as one sequential stream), the caller works on the first run itself, and a thread that
 * finishes its own run takes the remaining chunks of the others, front first. Threads are created once
 * and spin, then park, between jobs, so a decode step pays no thread creation and no fork/join
 * queueing, and dispatching allocates nothing. Jobs are serialized: one job runs at a time per pool.
 *
 * <p>Why the stealing: on a shared 2-core VM the two cores are rarely equally fast (the other core also
 * runs the JIT, the GC and the neighbours' interrupts); with fixed halves the caller waited for the
 * worker in most decode matmuls, about a fifth of the decode time on SmolLM2-135M. Which thread
 * computes a chunk never changes its result, so outputs stay bit-identical.
 *
 * <p>A worker that has not started a job by the time the caller has claimed every chunk is revoked from
 * it: the caller returns at once instead of waiting for the worker to wake up only to find nothing left.
 * On this VM a worker started a job more than 0.1 ms late (it had parked, or its core was taken from it)
 * 31-138 times per 528 decoded tokens of SmolLM2-135M int8, and the caller used to wait for it each time.
 */
public final class WorkerPool implements AutoCloseable {
    private static final int SPINS = 20_000;
    /** Chunks per thread: enough to rebalance a late thread, few enough that claiming one costs nothing. */
    private static final int CHUNKS_PER_THREAD = 4;
    /** Claim counters one cache line apart, so that each thread's counter stays in its own cache. */
    private static final int PAD = 16;
    private static volatile WorkerPool shared;

    private final Worker[] workers;
    private final int threads;
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicIntegerArray next;   // [thread * PAD]: next chunk of that thread's run
    private final int[] runEnd;              // [thread]: end of that thread's run of chunks
    private volatile long generation;
    private volatile boolean closed;
    private volatile Thread caller;
    private volatile boolean callerParked;
    private RangeTask task;
    private int size, chunks;
    private volatile Throwable failure;
    /** Tests only: runs in a worker after it sees a new job and before it tries to join it. */
    volatile Runnable beforeJoin;

    public WorkerPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.next = new AtomicIntegerArray(threads * PAD);
        this.runEnd = new int[threads];
        this.workers = new Worker[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            Worker t = new Worker(this, i + 1);
            t.setDaemon(true);
            workers[i] = t;
            t.start();
        }
    }

    /** The process-wide pool, sized by {@code -Djtune.threads} or the number of available cores. */
    public static WorkerPool shared() {
        WorkerPool p = shared;
        if (p == null) {
            synchronized (WorkerPool.class) {
                p = shared;
                if (p == null) {
                    int n = Integer.getInteger("jtune.threads", Runtime.getRuntime().availableProcessors());
                    shared = p = new WorkerPool(Math.max(1, n));
                }
            }
        }
        return p;
    }

    public int threads() {
        return threads;
    }

    /**
     * The calling thread's index in this pool, in {@code [0, threads())}: 0 for the thread that called
     * {@link #run}, 1.. for the workers. Lets a task index per-thread scratch buffers without thread-locals.
     */
    public int threadIndex() {
        return Thread.currentThread() instanceof Worker w && w.pool == this ? w.index : 0;
    }

    /** Runs {@code task} over {@code [0, n)}; every index is passed to exactly one {@code task.run} call. */
    public void run(int n, RangeTask task) {
        run(n, CHUNKS_PER_THREAD, task);
    }

    /**
     * As {@link #run(int, RangeTask)}, in up to {@code chunksPerThread} chunks a thread: more for long jobs of
     * heavy items (training's and prefill's products, milliseconds each), where a thread that finishes early
     * otherwise waits out the other's last chunk, an eighth of the job at four; a claim costs a contended atomic,
     * which decode's 40 µs jobs keep few.
     */
    public synchronized void run(int n, int chunksPerThread, RangeTask task) {
        if (n <= 0) {
            return;
        }
        if (threads == 1 || n == 1) {
            task.run(0, n);
            return;
        }
        int c = (int) Math.min(n, (long) threads * Math.max(1, chunksPerThread));
        for (int i = 0; i < threads; i++) {
            next.setPlain(i * PAD, (int) ((long) i * c / threads));
            runEnd[i] = (int) ((long) (i + 1) * c / threads);
        }
        this.task = task;
        this.size = n;
        this.chunks = c;
        this.failure = null;
        this.caller = Thread.currentThread();
        pending.set(workers.length);
        long gen = generation + 1;   // only run() writes generation, under the monitor
        generation = gen;            // volatile write publishes task, size, chunks and the claim counters
        for (Worker w : workers) {
            if (w.parked) {   // a spinning worker sees generation by itself; unpark costs a lock and a signal
                LockSupport.unpark(w);
            }
        }
        Throwable own = work(0);
        if (own == null) {   // every chunk is claimed: a worker that has not joined has nothing left to do
            for (Worker w : workers) {
                if (w.tryJoin(gen)) {
                    pending.decrementAndGet();
                }
            }
        }   // a caller whose chunk threw stopped claiming: the workers must still take the chunks it left
        int spins = 0;
        while (pending.get() != 0) {
            if (++spins < SPINS) {
                Thread.onSpinWait();
            } else {
                callerParked = true;
                if (pending.get() != 0) {
                    LockSupport.parkNanos(this, 50_000);
                }
                callerParked = false;
            }
        }
        this.task = null;
        Throwable t = own != null ? own : failure;
        if (t instanceof RuntimeException re) {
            throw re;
        } else if (t instanceof Error e) {
            throw e;
        }
    }

    /** Thread {@code index}'s share: its own run of chunks, then what is left of the others'. */
    private Throwable work(int index) {
        RangeTask t = task;
        int n = size, c = chunks;
        for (int k = 0; k < threads; k++) {
            int owner = (index + k) % threads, end = runEnd[owner];
            for (int chunk; (chunk = next.getAndIncrement(owner * PAD)) < end; ) {
                try {
                    t.run((int) ((long) chunk * n / c), (int) ((long) (chunk + 1) * n / c));
                } catch (Throwable e) {
                    return e;   // this thread stops; the others take the chunks left
                }
            }
        }
        return null;
    }

    /*
     * Parking handshake: a waiter sets its parked flag, then re-reads the condition before parking; the
     * other side writes the condition, then reads the flag and unparks only a parked thread. Both are
     * volatile, so at least one of them sees the other's write and no wakeup is lost.
     */
    private void workLoop(int index) {
        Worker self = workers[index - 1];
        long seen = 0;
        while (true) {
            int spins = 0;
            while (generation == seen && !closed) {
                if (++spins < SPINS) {
                    Thread.onSpinWait();
                } else {
                    self.parked = true;
                    if (generation == seen && !closed) {
                        LockSupport.park(this);
                    }
                    self.parked = false;
                }
            }
            if (closed) {
                return;
            }
            seen = generation;
            Runnable hook = beforeJoin;
            if (hook != null) {
                hook.run();
            }
            if (!self.tryJoin(seen)) {
                continue;   // the caller finished this job without it and revoked it
            }
            Throwable e = work(index);
            if (e != null) {
                failure = e;
            }
            if (pending.decrementAndGet() == 0 && callerParked) {
                LockSupport.unpark(caller);
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Worker w : workers) {
            LockSupport.unpark(w);
        }
    }

    private static final class Worker extends Thread {
        final WorkerPool pool;
        final int index;
        volatile boolean parked;
        /** The last job this worker joined, or was revoked from by the caller: whoever sets it first decides. */
        private final AtomicLong joined = new AtomicLong();

        /** Claims job {@code gen} for whoever calls: true for exactly one of the worker and the caller. */
        boolean tryJoin(long gen) {
            long last = joined.get();
            return last < gen && joined.compareAndSet(last, gen);
        }

        Worker(WorkerPool pool, int index) {
            super("jtune-worker-" + index);
            this.pool = pool;
            this.index = index;
        }

        @Override
        public void run() {
            pool.workLoop(index);
        }
    }
}
