import Foundation
import PeatCRDT

#if canImport(Glibc)
import Glibc
#endif

/// `peat-bench crdt <workload>`: the CRDT workloads of `shared/bench/WORKLOADS.md`, run against
/// `PeatCRDT` with the same inputs and the same timed sections as the peer scripts
/// (`shared/bench/peers/bench_loro.py`, `bench_pycrdt.py`). One workload, once, per process; it
/// prints one `RESULT {json}` line with the peer scripts' field names, so `Benchmarks/crdt_compare.py`
/// puts the engines side by side.
///
/// Inputs: `$CRDT_INPUTS` (default `../shared/bench/inputs.json` beside the repository) and
/// `$CRDT_TRACE` (default `../shared/bench-data/automerge-paper.json.gz`). Parsing happens before
/// any timed section. Exit status 1 (after the RESULT line, with `"verified":false`) when a check fails.
enum CRDTBenchmarks {
    static let lib = "peat-crdt"
    static let version = "peat-crdt 0.1"
    static let workloads = ["map_churn", "concurrent_merge", "text_trace", "small_docs"]

    static let mapCount = 100_000  // map_churn: number of sets (common.py MAP_N)
    static let concKeyspace = 5_000  // concurrent_merge: keys k0..k4999

    static func run(_ arguments: [String]) {
        guard arguments.count == 1, let workload = arguments.first, workloads.contains(workload) else {
            fail("usage: peat-bench crdt {\(workloads.joined(separator: "|"))}", status: 2)
        }
        do {
            switch workload {
            case "map_churn": try mapChurn()
            case "concurrent_merge": try concurrentMerge()
            case "text_trace": try textTrace()
            default: try smallDocs()
            }
        } catch {
            fail("peat-bench crdt \(workload): \(error)", status: 1)
        }
    }

    // MARK: - Workloads

    /// Replica A sets key_i -> i, one change per set; full-state encoding; a fresh replica B loads
    /// it and reads the count and the last key.
    static func mapChurn() throws {
        let keys = (0..<mapCount).map { "key_\($0)" }
        let base = maxRSSKilobytes()
        let a = Document(actor: actor(0))
        let c0 = cpuTime()
        let t0 = now()
        for (i, key) in keys.enumerated() {
            try a.put(.root, key, .int(Int64(i)))
            a.commit()  // one change per set
        }
        let t1 = now()
        let snapshot = a.save()
        let t2 = now()
        let b = try Document(loading: snapshot, actor: actor(1))
        let count = b.count(.root)
        let last = b.get(.root, keys[mapCount - 1])
        let ok = count == mapCount && last == .scalar(.int(Int64(mapCount - 1)))  // read inside the timing
        let t3 = now()
        let c3 = cpuTime()
        if !ok { note("map_churn: replica B has \(count) keys (want \(mapCount)); \(keys[mapCount - 1]) = \(String(describing: last))") }
        finish(
            "map_churn", ok: ok,
            [
                ("ops_s", .d(t1 - t0)), ("encode_s", .d(t2 - t1)), ("apply_s", .d(t3 - t2)),
                ("total_s", .d(t3 - t0)), ("cpu_s", .d(c3 - c0)), ("bytes", .i(snapshot.count)),
            ], base: base)
    }

    /// A applies conc_a, B applies conc_b (one change per set); each encodes what the other misses
    /// given its version vector, both apply, both read their size; then convergence is checked.
    static func concurrentMerge() throws {
        let inputs = try loadInputs()
        let aOps = try pairs(inputs["conc_a"], "conc_a")
        let bOps = try pairs(inputs["conc_b"], "conc_b")
        let base = maxRSSKilobytes()
        let a = Document(actor: actor(0))
        let b = Document(actor: actor(1))
        let c0 = cpuTime()
        let t0 = now()
        for (key, value) in aOps {
            try a.put(.root, key, .int(value))
            a.commit()
        }
        for (key, value) in bOps {
            try b.put(.root, key, .int(value))
            b.commit()
        }
        let t1 = now()
        let versionA = a.version
        let versionB = b.version
        guard let deltaAB = a.encodeChanges(since: versionB) else { fail("concurrent_merge: a.encodeChanges(since:) returned nil", status: 1) }
        guard let deltaBA = b.encodeChanges(since: versionA) else { fail("concurrent_merge: b.encodeChanges(since:) returned nil", status: 1) }
        try b.applyChanges(deltaAB)
        try a.applyChanges(deltaBA)
        let sizes = (a.count(.root), b.count(.root))  // read inside the timed region
        let t2 = now()
        let c2 = cpuTime()
        // Convergence: identical keys and values, 5,000 keys (outside the timing, as the peers do).
        let keysA = a.keys(.root)
        let keysB = b.keys(.root)
        var differing: [String] = []
        if keysA == keysB {
            for key in keysA where a.get(.root, key) != b.get(.root, key) { differing.append(key) }
        }
        let ok = keysA == keysB && differing.isEmpty && keysA.count == concKeyspace && sizes == (concKeyspace, concKeyspace)
        if !ok {
            var detail =
                "concurrent_merge: not converged: sizes \(sizes), keys \(keysA.count)/\(keysB.count) (equal: \(keysA == keysB)), \(differing.count) values differ"
            if let key = differing.first {
                detail += "; first \(key): A \(String(describing: a.get(.root, key))) B \(String(describing: b.get(.root, key)))"
            }
            note(detail)
        }
        let full = a.save()
        finish(
            "concurrent_merge", ok: ok,
            [
                ("ops_s", .d(t1 - t0)), ("sync_s", .d(t2 - t1)), ("total_s", .d(t2 - t0)), ("cpu_s", .d(c2 - c0)),
                ("delta_ab_bytes", .i(deltaAB.count)), ("delta_ba_bytes", .i(deltaBA.count)), ("bytes", .i(full.count)),
            ], base: base)
    }

    /// Replays every patch of the automerge-paper trace (delete then insert, one change per patch),
    /// checks the text inside the timing, encodes, then loads into a fresh replica and checks again.
    static func textTrace() throws {
        let (patches, final) = try loadTrace()
        let base = maxRSSKilobytes()
        let doc = Document(actor: actor(0))
        let text = try doc.putObject(.root, "text", .text)
        doc.commit()
        let c0 = cpuTime()
        let t0 = now()
        for patch in patches {
            try doc.spliceText(text, at: patch.position, deleting: patch.deleteCount, inserting: patch.insert)
            doc.commit()  // one change per patch
        }
        let replayed = doc.text(text)
        let ok1 = replayed == final
        let t1 = now()
        let c1 = cpuTime()
        let snapshot = doc.save()
        let t2 = now()
        let loaded = try Document(loading: snapshot, actor: actor(1))
        var reloaded = ""
        if case .object(let id, .text)? = loaded.get(.root, "text") { reloaded = loaded.text(id) }
        let ok2 = reloaded == final
        let t3 = now()
        if !ok1 { note("text_trace: replayed text differs from endContent: \(firstDifference(replayed, final))") }
        if !ok2 { note("text_trace: loaded text differs from endContent: \(firstDifference(reloaded, final))") }
        finish(
            "text_trace", ok: ok1 && ok2,
            [
                ("ops_s", .d(t1 - t0)), ("cpu_s", .d(c1 - c0)), ("encode_s", .d(t2 - t1)), ("parse_s", .d(t3 - t2)),
                ("bytes", .i(snapshot.count)), ("n_patches", .i(patches.count)),
            ], base: base)
    }

    /// 10,000 documents of one beacon each (5 fields in the root map, one change), each saved;
    /// then every encoding loaded into a fresh document and its `id` read.
    static func smallDocs() throws {
        let inputs = try loadInputs()
        guard let raw = inputs["beacons"] as? [Any] else { throw BenchInputError("inputs: no beacons list") }
        let beacons = try raw.map { entry throws -> Beacon in
            guard let o = entry as? [String: Any], let id = o["id"] as? String,
                let lat = o["lat"] as? NSNumber, let lon = o["lon"] as? NSNumber,
                let alt = o["alt"] as? NSNumber, let ts = o["ts"] as? NSNumber
            else { throw BenchInputError("inputs: malformed beacon \(entry)") }
            return Beacon(id: id, lat: lat.doubleValue, lon: lon.doubleValue, alt: alt.doubleValue, ts: ts.int64Value)
        }
        let writers = beacons.indices.map { actor(UInt64($0) + 2) }
        let reader = actor(1)
        let base = maxRSSKilobytes()
        let c0 = cpuTime()
        let t0 = now()
        var blobs: [[UInt8]] = []
        blobs.reserveCapacity(beacons.count)
        for (beacon, writer) in zip(beacons, writers) {
            let doc = Document(actor: writer)
            try doc.put(.root, "id", .string(beacon.id))
            try doc.put(.root, "lat", .double(beacon.lat))
            try doc.put(.root, "lon", .double(beacon.lon))
            try doc.put(.root, "alt", .double(beacon.alt))
            try doc.put(.root, "ts", .int(beacon.ts))
            doc.commit()  // one change per document
            blobs.append(doc.save())
        }
        let t1 = now()
        var mismatches = 0
        for (beacon, blob) in zip(beacons, blobs) {
            let doc = try Document(loading: blob, actor: reader)
            if doc.get(.root, "id") != .scalar(.string(beacon.id)) { mismatches += 1 }
        }
        let t2 = now()
        let c2 = cpuTime()
        let ok = mismatches == 0
        if !ok { note("small_docs: \(mismatches) loaded documents have the wrong id") }
        let total = blobs.reduce(0) { $0 + $1.count }
        finish(
            "small_docs", ok: ok,
            [
                ("create_encode_s", .d(t1 - t0)), ("decode_s", .d(t2 - t1)), ("total_s", .d(t2 - t0)),
                ("cpu_s", .d(c2 - c0)), ("bytes", .i(total)), ("bytes_per_doc", .d(Double(total) / Double(blobs.count))),
            ], base: base)
    }

    // MARK: - Inputs

    struct Beacon {
        let id: String
        let lat: Double
        let lon: Double
        let alt: Double
        let ts: Int64
    }

    struct Patch {
        let position: Int
        let deleteCount: Int
        let insert: String
    }

    struct BenchInputError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// `../shared` beside the repository this file was compiled from (Benchmarks/Sources/peat-bench/ → repo root).
    static func sharedPath(_ relative: String, file: String = #filePath) -> String {
        var url = URL(fileURLWithPath: file)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("../shared/" + relative).standardizedFileURL.path
    }

    static func path(env name: String, default relative: String) -> String {
        if let value = ProcessInfo.processInfo.environment[name], !value.isEmpty { return value }
        return sharedPath(relative)
    }

    static func loadInputs() throws -> [String: Any] {
        let path = path(env: "CRDT_INPUTS", default: "bench/inputs.json")
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw BenchInputError("\(path): not a JSON object")
        }
        return object
    }

    /// A list of `[key, int]` pairs.
    static func pairs(_ value: Any?, _ name: String) throws -> [(String, Int64)] {
        guard let list = value as? [Any] else { throw BenchInputError("inputs: no \(name) list") }
        return try list.map { entry in
            guard let pair = entry as? [Any], pair.count == 2, let key = pair[0] as? String, let number = pair[1] as? NSNumber
            else { throw BenchInputError("inputs: malformed \(name) entry \(entry)") }
            return (key, number.int64Value)
        }
    }

    /// The trace's patches (`txns[].patches`, each `[pos, ndel, ins]`) and its `endContent`,
    /// decompressed by `gzip -dc`.
    static func loadTrace() throws -> ([Patch], String) {
        let path = path(env: "CRDT_TRACE", default: "bench-data/automerge-paper.json.gz")
        guard FileManager.default.fileExists(atPath: path) else { throw BenchInputError("\(path): no such file") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-dc", path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()  // before waiting: the pipe would fill
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchInputError("gzip -dc \(path) exited \(process.terminationStatus)") }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let txns = object["txns"] as? [Any], let final = object["endContent"] as? String
        else { throw BenchInputError("\(path): no txns / endContent") }
        var patches: [Patch] = []
        patches.reserveCapacity(txns.count)
        for txn in txns {
            guard let t = txn as? [String: Any], let list = t["patches"] as? [Any] else { throw BenchInputError("\(path): malformed txn") }
            for entry in list {
                guard let p = entry as? [Any], p.count == 3, let pos = p[0] as? NSNumber, let ndel = p[1] as? NSNumber,
                    let ins = p[2] as? String
                else { throw BenchInputError("\(path): malformed patch \(entry)") }
                patches.append(Patch(position: pos.intValue, deleteCount: ndel.intValue, insert: ins))
            }
        }
        return (patches, final)
    }

    // MARK: - Helpers

    /// A deterministic, full-width 16-byte actor for index `n` (splitmix64 of the index, twice).
    static func actor(_ n: UInt64) -> ActorID {
        var state = 0x5EA7_C2D7_0000_1234 &+ n &* 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var bytes: [UInt8] = []
        for word in [next(), next()] {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return ActorID(bytes: bytes)!
    }

    static func clock(_ id: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Wall clock (monotonic), seconds.
    static func now() -> Double { clock(CLOCK_MONOTONIC) }

    /// CPU time of this process, seconds.
    static func cpuTime() -> Double { clock(CLOCK_PROCESS_CPUTIME_ID) }

    /// Peak resident set size of this process so far (`ru_maxrss`, KiB on Linux).
    static func maxRSSKilobytes() -> Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Int(usage.ru_maxrss)
    }

    static func firstDifference(_ got: String, _ want: String) -> String {
        let g = Array(got.unicodeScalars)
        let w = Array(want.unicodeScalars)
        var i = 0
        while i < g.count, i < w.count, g[i] == w[i] { i += 1 }
        func around(_ s: [Unicode.Scalar]) -> String {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[min(i, s.count)..<min(i + 40, s.count)])
            return String(v).debugDescription
        }
        return "lengths \(g.count) vs \(w.count) (scalars), first difference at \(i): got \(around(g)) want \(around(w))"
    }

    enum Field {
        case s(String)
        case d(Double)
        case i(Int)
        case b(Bool)

        var json: String {
            switch self {
            case .s(let v): return v.debugDescription  // ASCII names and versions: a valid JSON string
            case .d(let v): return v.isFinite ? "\(v)" : "null"
            case .i(let v): return "\(v)"
            case .b(let v): return v ? "true" : "false"
            }
        }
    }

    /// Prints the RESULT line (fields in the peer scripts' order); exits 1 when a check failed.
    static func finish(_ workload: String, ok: Bool, _ metrics: [(String, Field)], base: Int) {
        let fields: [(String, Field)] =
            [("lib", .s(lib)), ("version", .s(version)), ("workload", .s(workload))]
            + metrics + [("verified", .b(ok)), ("rss_base_kb", .i(base)), ("peak_rss_kb", .i(maxRSSKilobytes()))]
        emit("RESULT {" + fields.map { "\"\($0.0)\": \($0.1.json)" }.joined(separator: ", ") + "}")
        if !ok { exit(1) }
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static func fail(_ message: String, status: Int32) -> Never {
        note(message)
        exit(status)
    }
}
