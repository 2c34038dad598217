import PeatTestSupport
import PropertyBased
import Testing

@testable import PeatCRDT

/// The CRDT laws of DESIGN §5, checked over random edits on several replicas.
struct ConvergencePropertyTests {
    /// Three replicas edit concurrently; every change batch is delivered to every other replica in a
    /// random order, some twice, some merged into bigger batches. All end byte-identical.
    @Test func anyDeliveryOrderDuplicationAndBatchingConverges() async throws {
        await throwingPropertyCheck(count: 60, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let replicas = (1...3).map { Document(actor: actor(UInt8($0))) }
            var batches: [[UInt8]] = []
            for _ in 0..<Int.random(in: 5...25, using: &rng) {
                let doc = replicas.randomElement(using: &rng)!
                let before = doc.version
                try randomEdit(doc, &rng)
                // Occasionally a replica hears some of what others did before editing again.
                if Bool.random(using: &rng), let b = batches.randomElement(using: &rng) { try doc.applyChanges(b) }
                if let batch = doc.encodeChanges(since: before) { batches.append(batch) }
                if Int.random(in: 0..<4, using: &rng) == 0 { batches.append(doc.encodeChanges(since: VersionVector())!) }
            }
            for doc in replicas {
                var deliveries = batches + batches.filter { _ in Bool.random(using: &rng) }
                deliveries.shuffle(using: &rng)
                for batch in deliveries { try doc.applyChanges(batch) }
                #expect(doc.queuedChangeCount == 0)
            }
            let states = replicas.map { $0.toJSON().canonicalString }
            #expect(Set(states).count == 1, "seed \(seed)")
            #expect(Set(replicas.map(\.heads)).count == 1)
            #expect(Set(replicas.map(\.version)).count == 1)
            #expect(Set(replicas.map { $0.latestSnapshot() }).count == 1)
        }
    }

    /// The sync protocol between every pair terminates and leaves all replicas identical; applying
    /// everything again changes nothing (idempotence).
    @Test func pairwiseSyncTerminatesAndIsIdempotent() async throws {
        await throwingPropertyCheck(count: 40, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let replicas = (1...3).map { Document(actor: actor(UInt8($0))) }
            for round in 0..<4 {
                for _ in 0..<Int.random(in: 1...8, using: &rng) { try randomEdit(replicas.randomElement(using: &rng)!, &rng) }
                let i = Int.random(in: 0..<3, using: &rng)
                let j = (i + 1 + round % 2) % 3
                try syncPair(replicas[i], replicas[j])
            }
            try syncPair(replicas[0], replicas[1])
            try syncPair(replicas[1], replicas[2])
            try syncPair(replicas[0], replicas[1])
            let json = replicas[0].toJSON()
            #expect(replicas.allSatisfy { $0.toJSON() == json }, "seed \(seed)")
            let before = replicas[2].toJSON().canonicalString
            try replicas[2].applyChanges(replicas[0].encodeChanges(since: VersionVector())!)
            #expect(replicas[2].toJSON().canonicalString == before)
            // Already in sync: one summary each way, then silence.
            #expect(try syncPair(replicas[0], replicas[2]) == 2)
        }
    }

    @Test func saveLoadRoundTripsStateAndHistory() async throws {
        await throwingPropertyCheck(count: 60, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let a = Document(actor: actor(1))
            let b = Document(actor: actor(2))
            for _ in 0..<Int.random(in: 1...30, using: &rng) {
                try randomEdit(Bool.random(using: &rng) ? a : b, &rng)
                if Int.random(in: 0..<5, using: &rng) == 0 { try syncPair(a, b) }
            }
            let loaded = try Document(loading: a.save(), actor: actor(9))
            #expect(loaded.toJSON() == a.toJSON())
            #expect(loaded.version == a.version)
            #expect(loaded.heads == a.heads)
            #expect(loaded.save() == a.save())
            // The reloaded replica keeps syncing correctly with the others.
            try syncPair(loaded, b)
            try syncPair(a, b)
            #expect(loaded.toJSON() == b.toJSON())
        }
    }

    /// Compaction drops history and never changes the materialised state; the compacted document
    /// still merges later changes, and a peer that needs dropped history gets a snapshot instead.
    @Test func compactionPreservesStateAndKeepsSyncing() async throws {
        await throwingPropertyCheck(count: 40, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let a = Document(actor: actor(1))
            let b = Document(actor: actor(2))
            for _ in 0..<Int.random(in: 2...20, using: &rng) { try randomEdit(Bool.random(using: &rng) ? a : b, &rng) }
            try syncPair(a, b)
            let state = a.toJSON().canonicalString
            let snapshot = a.latestSnapshot()
            a.compact()
            #expect(a.historyCount == 0)
            #expect(a.toJSON().canonicalString == state)
            #expect(a.latestSnapshot() == snapshot)
            let reloaded = try Document(loading: a.save(), actor: actor(3))
            #expect(reloaded.toJSON().canonicalString == state)
            // Later concurrent edits still merge through the compacted replica.
            for _ in 0..<3 {
                try randomEdit(a, &rng)
                try randomEdit(b, &rng)
            }
            try syncPair(a, b)
            #expect(a.toJSON() == b.toJSON(), "seed \(seed)")
            // State section plus the history since compaction: loads back to the same state and history.
            let again = try Document(loading: a.save(), actor: actor(4))
            #expect(again.toJSON() == a.toJSON())
            #expect(again.version == a.version)
            #expect(again.heads == a.heads)
            #expect(again.save() == a.save())
        }
    }
}
