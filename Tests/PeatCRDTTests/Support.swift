import PeatTestSupport

@testable import PeatCRDT

func actor(_ n: UInt8) -> ActorID { ActorID(bytes: [UInt8](repeating: 0, count: 15) + [n])! }

/// Makes one random edit (committed as one change) on `doc`: map sets/deletes, nested maps,
/// list inserts/removes, text splices and counter increments.
func randomEdit(_ doc: Document, _ rng: inout SeededRandom) throws {
    let keys = ["a", "b", "c", "d"]
    let ops = Int.random(in: 1...3, using: &rng)
    for _ in 0..<ops {
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1:
            try doc.put(.root, keys.randomElement(using: &rng)!, .int(Int64.random(in: 0..<100, using: &rng)))
        case 2:
            try doc.delete(.root, keys.randomElement(using: &rng)!)
        case 3:
            if case .object(let m, .map)? = doc.get(.root, "m") {
                try doc.put(m, keys.randomElement(using: &rng)!, .string(String(Int.random(in: 0..<9, using: &rng))))
            } else {
                try doc.putObject(.root, "m", .map)
            }
        case 4, 5:
            if case .object(let l, .list)? = doc.get(.root, "l") {
                let n = doc.count(l)
                if n > 0, Bool.random(using: &rng) {
                    try doc.remove(l, at: Int.random(in: 0..<n, using: &rng))
                } else {
                    try doc.insert(l, at: Int.random(in: 0...n, using: &rng), .int(Int64.random(in: 0..<50, using: &rng)))
                }
            } else {
                try doc.putObject(.root, "l", .list)
            }
        case 6, 7:
            if case .object(let t, .text)? = doc.get(.root, "t") {
                let n = doc.count(t)
                let pos = Int.random(in: 0...n, using: &rng)
                let del = Int.random(in: 0...min(2, n - pos), using: &rng)
                let ins = String((0..<Int.random(in: 0...3, using: &rng)).map { _ in "xyzé🙂".randomElement(using: &rng)! })
                try doc.spliceText(t, at: pos, deleting: del, inserting: ins)
            } else {
                try doc.putObject(.root, "t", .text)
            }
        default:
            if case .scalar(.counter)? = doc.get(.root, "n") {
                try doc.increment(.root, "n", by: Int64.random(in: -3...5, using: &rng))
            } else if doc.get(.root, "n") == nil {
                try doc.put(.root, "n", .counter(0))
            } else {
                try doc.put(.root, "b", .bool(true))
            }
        }
    }
    doc.commit(time: 1_700_000_000_000)
}

/// Runs the sync protocol between two documents until both are quiet; returns the number of messages.
@discardableResult
func syncPair(_ a: Document, _ b: Document, mode: SyncMode = .fullHistory, limit: Int = 50) throws -> Int {
    var sa = SyncState()
    var sb = SyncState()
    var messages = 0
    for _ in 0..<limit {
        let m1 = a.generateSyncMessage(&sa, mode: mode)
        if let m1 {
            try b.receiveSyncMessage(m1, &sb, mode: mode)
            messages += 1
        }
        let m2 = b.generateSyncMessage(&sb, mode: mode)
        if let m2 {
            try a.receiveSyncMessage(m2, &sa, mode: mode)
            messages += 1
        }
        if m1 == nil, m2 == nil { return messages }
    }
    throw PeatCRDTError(.invalidOperation, "sync did not terminate within \(limit) rounds")
}
