import BenchCLMDB
import Foundation
import PeatStorage

/// `LMDBDocumentStore` against raw LMDB through the C API, same durability (fsync on every
/// commit), same 1 KiB values and the same key layout, in the same run.
enum StorageBenchmarks {
    static let documentCount = 100_000
    static let batchSize = 1_000
    static let value = [UInt8](repeating: 0x42, count: 1024)

    static func run() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("peat-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let keys = (0..<documentCount).map { try! DocumentKey(collection: "beacons", id: String(format: "beacon-%06d", $0)) }
        let rawKeys = keys.map { Array($0.collection.utf8) + [0] + Array($0.id.utf8) }

        // Batched puts: each side three times into a fresh directory, alternating which goes
        // first (so neither pays for the other's dirty pages), best run kept.
        var oursPut = Double.infinity
        var rawPut = Double.infinity
        for round in 0..<3 {
            let oursRun = { () throws -> Double in
                var configuration = LMDBDocumentStore.Configuration()
                configuration.initialSize = RawLMDB.mapSize  // the same map size as the baseline
                let store = try LMDBDocumentStore(path: root + "/ours-\(round)", configuration: configuration)
                defer { store.close() }
                return try measure {
                    for start in stride(from: 0, to: documentCount, by: batchSize) {
                        try store.apply(keys[start..<(start + batchSize)].map { .put($0, value) }, origin: .local)
                    }
                }
            }
            let rawRun = { () throws -> Double in
                let raw = try RawLMDB(path: root + "/raw-\(round)")
                defer { raw.close() }
                return try measure {
                    for start in stride(from: 0, to: documentCount, by: batchSize) {
                        try raw.putBatch(rawKeys[start..<(start + batchSize)], value: value)
                    }
                }
            }
            if round % 2 == 0 {
                oursPut = min(oursPut, try oursRun())
                rawPut = min(rawPut, try rawRun())
            } else {
                rawPut = min(rawPut, try rawRun())
                oursPut = min(oursPut, try oursRun())
            }
        }
        report("storage_batched_put_1KiB", ours: Double(documentCount) / oursPut, raw: Double(documentCount) / rawPut)
        let store = try LMDBDocumentStore(path: root + "/ours-0")
        let raw = try RawLMDB(path: root + "/raw-0")

        // Gets in random order, one read transaction each.
        var generator = SystemRandomNumberGenerator()
        let order = (0..<documentCount).map { _ in Int.random(in: 0..<documentCount, using: &generator) }
        var checksum = 0
        let oursGet = try measure {
            for index in order { checksum &+= try store.get(keys[index])!.value.count }
        }
        let rawGet = try measure {
            for index in order { checksum &+= try raw.get(rawKeys[index])!.count }
        }
        precondition(checksum == 2 * documentCount * value.count)
        report("storage_get_1KiB", ours: Double(documentCount) / oursGet, raw: Double(documentCount) / rawGet)
        store.close()
        raw.close()

        // Opening a 100,000-document store (as after a pod restart).
        var openTimes: [Double] = []
        for _ in 0..<5 {
            let seconds = try measure {
                let reopened = try LMDBDocumentStore(path: root + "/ours-0")
                precondition(reopened.actorID.count == 16)
                reopened.close()
            }
            openTimes.append(seconds)
        }
        let openMs = (openTimes.sorted()[2] * 100_000).rounded() / 100
        emit(#"RESULT {"workload":"storage_open_100k","documents":\#(documentCount),"median_open_ms":\#(openMs),"target_ms":200}"#)
    }

    static func measure(_ body: () throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        var failure: (any Error)?
        let elapsed = clock.measure {
            do { try body() } catch { failure = error }
        }
        if let failure { throw failure }
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func report(_ workload: String, ours: Double, raw: Double) {
        emit(
            #"RESULT {"workload":"\#(workload)","ours_per_s":\#(Int(ours)),"baseline":"raw LMDB C API","baseline_per_s":\#(Int(raw)),"ratio":\#(((ours / raw) * 1000).rounded() / 1000)}"#
        )
    }
}

/// The baseline: LMDB used directly, with the same flags and durability as the store.
final class RawLMDB {
    private var env: OpaquePointer?
    private var dbi = MDB_dbi()

    /// 256 MiB: room for the benchmark's 100,000 × 1 KiB documents without growing.
    static let mapSize = 1 << 28

    struct Failure: Error { let status: Int32 }

    init(path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try check(mdb_env_create(&env))
        try check(mdb_env_set_maxdbs(env, 4))
        try check(mdb_env_set_mapsize(env, Self.mapSize))
        try check(mdb_env_open(env, path, UInt32(MDB_NOTLS), 0o600))
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn))
        try check(mdb_dbi_open(txn, "documents", UInt32(MDB_CREATE), &dbi))
        try check(mdb_txn_commit(txn))
    }

    func putBatch(_ keys: ArraySlice<[UInt8]>, value: [UInt8]) throws {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn))
        for key in keys {
            let status = key.withUnsafeBytes { keyBytes in
                value.withUnsafeBytes { valueBytes in
                    var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                    var v = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                    return mdb_put(txn, dbi, &k, &v, 0)
                }
            }
            try check(status)
        }
        try check(mdb_txn_commit(txn))
    }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn))
        defer { mdb_txn_abort(txn) }
        var value = MDB_val()
        let status = key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            return mdb_get(txn, dbi, &k, &value)
        }
        if status == MDB_NOTFOUND { return nil }
        try check(status)
        return Array(UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
    }

    func close() {
        mdb_env_close(env)
        env = nil
    }

    private func check(_ status: Int32) throws {
        if status != 0 { throw Failure(status: status) }
    }
}
