import NIOConcurrencyHelpers

/// A bounded, single-reader queue of frames: `send` waits while `capacity` frames are unread,
/// `next` waits for a frame. After `finish`, queued frames are still delivered, then `nil`;
/// sends are refused. Waiting tasks are resumed by `finish`.
final class FrameQueue: Sendable {
    private struct State {
        var frames: [[UInt8]] = []
        var head = 0
        var finished = false
        var reader: CheckedContinuation<[UInt8]?, Never>?
        var writers: [CheckedContinuation<Bool, Never>] = []
        var count: Int { frames.count - head }

        mutating func popFirst() -> [UInt8]? {
            guard head < frames.count else { return nil }
            let frame = frames[head]
            head += 1
            if head > 64, head * 2 > frames.count {
                frames.removeFirst(head)
                head = 0
            }
            return frame
        }
    }

    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
    }

    /// Queues a frame, waiting while the queue is full. Returns false if the queue was finished.
    func send(_ frame: [UInt8]) async -> Bool {
        while true {
            enum Step {
                case done(Bool)
                case wait
            }
            let step: Step = state.withLockedValue { state in
                if state.finished { return .done(false) }
                if let reader = state.reader {
                    state.reader = nil
                    reader.resume(returning: frame)
                    return .done(true)
                }
                if state.count < capacity {
                    state.frames.append(frame)
                    return .done(true)
                }
                return .wait
            }
            switch step {
            case .done(let accepted):
                return accepted
            case .wait:
                let stillOpen = await withCheckedContinuation { continuation in
                    state.withLockedValue { state in
                        if state.finished || state.count < capacity {
                            continuation.resume(returning: !state.finished)
                        } else {
                            state.writers.append(continuation)
                        }
                    }
                }
                if !stillOpen { return false }
            }
        }
    }

    /// The next frame, or nil once the queue is finished and drained.
    func next() async -> [UInt8]? {
        await withCheckedContinuation { continuation in
            let writer: CheckedContinuation<Bool, Never>? = state.withLockedValue { state in
                if let frame = state.popFirst() {
                    continuation.resume(returning: frame)
                    return state.writers.isEmpty ? nil : state.writers.removeFirst()
                }
                if state.finished {
                    continuation.resume(returning: nil)
                } else {
                    state.reader = continuation
                }
                return nil
            }
            writer?.resume(returning: true)
        }
    }

    /// Refuses further sends and wakes every waiter; queued frames stay readable.
    /// Whether `finish()` was called (the connection is closed).
    var isFinished: Bool { state.withLockedValue { $0.finished } }

    func finish() {
        let (reader, writers) = state.withLockedValue { state in
            state.finished = true
            defer {
                state.reader = nil
                state.writers = []
            }
            return (state.count == 0 ? state.reader : nil, state.writers)
        }
        reader?.resume(returning: nil)
        for writer in writers { writer.resume(returning: false) }
    }
}
