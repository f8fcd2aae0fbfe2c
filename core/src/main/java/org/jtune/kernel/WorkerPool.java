package org.jtune.kernel;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A persistent pool of worker threads with static partitioning: {@link #run} splits {@code [0, n)}
 * into one contiguous range per thread, the caller takes the first range itself, and returns when
 * all ranges are done. Threads are created once and park between jobs, so a decode step pays no
 * thread creation and no fork/join queueing, and dispatching allocates nothing. Jobs are serialized:
 * one job runs at a time per pool.
 */
public final class WorkerPool implements AutoCloseable {
    private static final int SPINS = 20_000;
    private static volatile WorkerPool shared;

    private final Thread[] workers;
    private final int threads;
    private final AtomicInteger pending = new AtomicInteger();
    private volatile long generation;
    private volatile boolean closed;
    private volatile Thread caller;
    private RangeTask task;
    private int size;
    private volatile Throwable failure;

    public WorkerPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            int index = i + 1;
            Thread t = new Thread(() -> workLoop(index), "jtune-worker-" + index);
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
     * Which thread's range of a job over {@code [0, n)} starts at {@code from}: lets a task index
     * per-thread scratch buffers without thread-locals.
     */
    public int rangeIndex(int n, int from) {
        return from / ((n + threads - 1) / threads);
    }

    /** Runs {@code task} over {@code [0, n)} split into {@link #threads()} contiguous ranges. */
    public synchronized void run(int n, RangeTask task) {
        if (n <= 0) {
            return;
        }
        if (threads == 1 || n == 1) {
            task.run(0, n);
            return;
        }
        this.task = task;
        this.size = n;
        this.failure = null;
        this.caller = Thread.currentThread();
        pending.set(workers.length);
        generation++; // volatile write publishes task and size
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
        Throwable own = null;
        try {
            task.run(0, Math.min(n, (n + threads - 1) / threads));
        } catch (Throwable t) {
            own = t;
        }
        int spins = 0;
        while (pending.get() != 0) {
            if (++spins < SPINS) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(this, 50_000);
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

    private void workLoop(int index) {
        long seen = 0;
        while (true) {
            int spins = 0;
            while (generation == seen && !closed) {
                if (++spins < SPINS) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.park(this);
                }
            }
            if (closed) {
                return;
            }
            seen = generation;
            RangeTask t = task;
            int n = size;
            int chunk = (n + threads - 1) / threads;
            int from = Math.min(n, index * chunk);
            int to = Math.min(n, from + chunk);
            try {
                if (from < to) {
                    t.run(from, to);
                }
            } catch (Throwable e) {
                failure = e;
            } finally {
                if (pending.decrementAndGet() == 0) {
                    LockSupport.unpark(caller);
                }
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
