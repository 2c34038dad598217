/// A change decoded from a batch; actor indices refer to the batch's actor table.
struct DecodedChange {
    var actor: UInt32
    var seq: UInt64
    var startOp: UInt64
    var time: Int64
    var deps: [(actor: UInt32, seq: UInt64)]
    var externalDeps: [ChangeHash]
    var ops: [Op]
}

/// The compact encoding of a sequence of changes, used for saved documents and sync messages.
///
/// Layout: format byte, flags byte, actor table (count + 16 bytes each), an optional state section
/// (compacted documents), then records until the end. A record is one change, or a run of
/// single-operation changes by one actor with consecutive seqs and op ids — characters typed one
/// after another, or characters deleted one after another — stored as one string or one start and
/// step. Fields that follow from the previous record (same actor, next seq, next op id, same time)
/// are flags, not bytes. Dependencies are (actor, seq) pairs, or hashes for history that compaction
/// dropped. With flag bit 0 the bytes after the flags are LZ-compressed (`LZCompression`).
enum ChangeBatch {
    static let formatVersion: UInt8 = 1

    enum Kind: UInt8 { case change = 0, textRun = 1, deleteRun = 2 }

    static let actorSame: UInt8 = 0x04
    static let seqNext: UInt8 = 0x08
    static let startOpNext: UInt8 = 0x10
    static let hasDeps: UInt8 = 0x20
    /// Runs only (where `hasDeps` cannot occur): every change of the run has the same, new time.
    static let uniformTime: UInt8 = 0x20
    static let timeSame: UInt8 = 0x40
    static let singleOp: UInt8 = 0x80

    static let flagCompressed: UInt8 = 0x01
    static let flagState: UInt8 = 0x02
    /// Bodies at least this long are compressed when that makes them smaller.
    static let compressionThreshold = 256
}

/// Writes records; the caller supplies changes with document actor indices.
struct ChangeBatchEncoder {
    private(set) var table: [ActorID] = []
    private var docToBatch: [UInt32]
    private let docActors: [ActorID]
    var body = ByteWriter(capacity: 1024)
    private var lastSeq: [UInt64] = []
    private var previousEnd: UInt64 = 1
    private var previousTime: Int64 = 0
    private var previousActor: UInt32 = .max

    init(actors: [ActorID]) {
        docActors = actors
        docToBatch = Array(repeating: .max, count: actors.count)
    }

    mutating func batchIndex(_ docActor: UInt32) -> UInt32 {
        let existing = docToBatch[Int(docActor)]
        if existing != .max { return existing }
        let i = UInt32(table.count)
        table.append(docActors[Int(docActor)])
        docToBatch[Int(docActor)] = i
        lastSeq.append(0)
        return i
    }

    private mutating func prefix(
        kind: ChangeBatch.Kind, actor docActor: UInt32, seq: UInt64, startOp: UInt64,
        extraFlags: UInt8, times: ArraySlice<Int64>, count: Int?
    ) {
        let a = batchIndex(docActor)
        var header = kind.rawValue | extraFlags
        if a == previousActor { header |= ChangeBatch.actorSame }
        if seq == lastSeq[Int(a)] + 1 { header |= ChangeBatch.seqNext }
        if startOp == previousEnd { header |= ChangeBatch.startOpNext }
        let sameTime = times.allSatisfy { $0 == previousTime }
        if sameTime { header |= ChangeBatch.timeSame }
        // A run made within one millisecond, but a different one from the previous record: one delta.
        let uniform = !sameTime && kind != .change && times.allSatisfy { $0 == times.first! }
        if uniform { header |= ChangeBatch.uniformTime }
        body.byte(header)
        if header & ChangeBatch.actorSame == 0 { body.uleb(UInt64(a)) }
        if header & ChangeBatch.seqNext == 0 { body.uleb(seq) }
        if header & ChangeBatch.startOpNext == 0 { body.uleb(startOp) }
        if let count { body.uleb(count) }
        if uniform {
            body.sleb(times.first! &- previousTime)
            previousTime = times.first!
        } else if !sameTime {
            for t in times {
                body.sleb(t &- previousTime)
                previousTime = t
            }
        }
        previousActor = a
    }

    private func mapper() -> (UInt32) -> UInt32 {
        let map = docToBatch
        return { map[Int($0)] }
    }

    /// Registers every actor an op refers to, so the mapper can be a plain array lookup.
    private mutating func register(_ op: Op) {
        if !op.obj.isZero { _ = batchIndex(op.obj.actor) }
        if case .seq(let e) = op.key, !e.isZero { _ = batchIndex(e.actor) }
        op.pred.forEach { _ = batchIndex($0.actor) }
    }

    /// Appends changes in causal order; `dep` resolves a log index to (document actor, seq).
    mutating func append(_ changes: [StoredChange], dep: (Int32) -> (UInt32, UInt64)) {
        var i = 0
        while i < changes.count {
            let c = changes[i]
            if let n = textRunLength(changes, from: i), n >= 2 {
                appendTextRun(changes[i..<i + n])
                i += n
            } else if let (n, step) = deleteRun(changes, from: i), n >= 2 {
                appendDeleteRun(changes[i..<i + n], step: step)
                i += n
            } else {
                appendChange(c, dep: dep)
                i += 1
            }
        }
    }

    private static func isSimple(_ c: StoredChange) -> Bool {
        c.ops.count == 1 && c.deps.isEmpty && c.externalDeps.isEmpty
    }

    private func textRunLength(_ changes: [StoredChange], from i: Int) -> Int? {
        let first = changes[i]
        guard Self.isSimple(first), first.ops[0].insert, case .text(_, 1) = first.ops[0].action else { return nil }
        var n = 1
        var previous = first
        while i + n < changes.count {
            let c = changes[i + n]
            guard Self.isSimple(c), c.actor == first.actor, c.seq == previous.seq + 1, c.startOp == previous.startOp + 1,
                c.ops[0].insert, c.ops[0].obj == first.ops[0].obj, case .text(_, 1) = c.ops[0].action,
                c.ops[0].key == .seq(OpID(counter: previous.startOp, actor: first.actor))
            else { break }
            previous = c
            n += 1
        }
        return n
    }

    private func deleteRun(_ changes: [StoredChange], from i: Int) -> (Int, Int64)? {
        let first = changes[i]
        guard Self.isSimple(first), !first.ops[0].insert, case .delete = first.ops[0].action,
            case .seq(let t0) = first.ops[0].key, first.ops[0].pred == .one(t0), i + 1 < changes.count
        else { return nil }
        var n = 1
        var previous = first
        var previousTarget = t0
        var step: Int64? = nil
        while i + n < changes.count {
            let c = changes[i + n]
            guard Self.isSimple(c), c.actor == first.actor, c.seq == previous.seq + 1, c.startOp == previous.startOp + 1,
                !c.ops[0].insert, c.ops[0].obj == first.ops[0].obj, case .delete = c.ops[0].action,
                case .seq(let t) = c.ops[0].key, c.ops[0].pred == .one(t), t.actor == t0.actor
            else { break }
            let s = Int64(bitPattern: t.counter &- previousTarget.counter)
            if let step, s != step { break }
            step = s
            previous = c
            previousTarget = t
            n += 1
        }
        guard let step else { return nil }
        return (n, step)
    }

    /// A run record: the common prefix, the object and the first key, then the kind's `tail`.
    private mutating func appendRun(_ run: ArraySlice<StoredChange>, kind: ChangeBatch.Kind, tail: (inout ByteWriter) -> Void) {
        let first = run.first!
        for c in run { register(c.ops[0]) }
        prefix(
            kind: kind, actor: first.actor, seq: first.seq, startOp: first.startOp, extraFlags: 0,
            times: ArraySlice(run.map(\.time)), count: run.count)
        let map = mapper()
        OpCodec.writeID(first.ops[0].obj, own: first.startOp, actor: map, into: &body)
        guard case .seq(let key) = first.ops[0].key else { return }
        OpCodec.writeID(key, own: first.startOp, actor: map, into: &body)
        tail(&body)
        finish(run.last!)
    }

    /// Characters typed one after another: the first one's reference, then the string.
    private mutating func appendTextRun(_ run: ArraySlice<StoredChange>) {
        appendRun(run, kind: .textRun) { body in
            var text = ""
            for c in run { if case .text(let s, _) = c.ops[0].action { text += s } }
            body.string(text)
        }
    }

    /// Characters deleted one after another: the first target, then the id step between targets.
    private mutating func appendDeleteRun(_ run: ArraySlice<StoredChange>, step: Int64) {
        appendRun(run, kind: .deleteRun) { $0.sleb(step) }
    }

    private mutating func appendChange(_ c: StoredChange, dep: (Int32) -> (UInt32, UInt64)) {
        for op in c.ops { register(op) }
        let deps = c.deps.map(dep)
        for d in deps { _ = batchIndex(d.0) }
        var flags: UInt8 = 0
        if !deps.isEmpty || !c.externalDeps.isEmpty { flags |= ChangeBatch.hasDeps }
        if c.ops.count == 1 { flags |= ChangeBatch.singleOp }
        prefix(
            kind: .change, actor: c.actor, seq: c.seq, startOp: c.startOp, extraFlags: flags,
            times: [c.time], count: nil)
        if flags & ChangeBatch.hasDeps != 0 {
            body.uleb(deps.count + c.externalDeps.count)
            for d in deps {
                body.byte(0)
                body.uleb(UInt64(docToBatch[Int(d.0)]))
                body.uleb(d.1)
            }
            for h in c.externalDeps {
                body.byte(1)
                body.raw(h.bytes)
            }
        }
        if c.ops.count != 1 { body.uleb(c.ops.count) }
        let map = mapper()
        var own = c.startOp
        for op in c.ops {
            OpCodec.encode(op, own: own, actor: map, into: &body)
            own += op.action.width
        }
        finish(c)
    }

    private mutating func finish(_ last: StoredChange) {
        lastSeq[Int(docToBatch[Int(last.actor)])] = last.seq
        previousEnd = last.startOp + last.width
    }

    /// The finished batch: header, actor table, optional state section, records.
    func finished(state: [UInt8]? = nil, compress: Bool = true) -> [UInt8] {
        var inner = ByteWriter(capacity: body.bytes.count + table.count * 16 + 8)
        inner.uleb(table.count)
        for a in table {
            inner.uint64BigEndian(a.high)
            inner.uint64BigEndian(a.low)
        }
        if let state { inner.data(state) }
        inner.raw(body.bytes)
        var flags: UInt8 = state == nil ? 0 : ChangeBatch.flagState
        var out: [UInt8] = [ChangeBatch.formatVersion]
        if compress, inner.bytes.count >= ChangeBatch.compressionThreshold {
            let packed = LZCompression.compress(inner.bytes)
            var w = ByteWriter(capacity: packed.count + 6)
            w.uleb(inner.bytes.count)
            let total = 2 + w.bytes.count + packed.count
            // A body that compresses beyond the decoder's expansion bound (long runs of one value)
            // stays uncompressed: every batch this writes, the decoder reads.
            if packed.count + 4 < inner.bytes.count, inner.bytes.count <= total * ChangeBatchDecoder.maximumExpansion {
                flags |= ChangeBatch.flagCompressed
                out.append(flags)
                out += w.bytes
                out += packed
                return out
            }
        }
        out.append(flags)
        out += inner.bytes
        return out
    }
}

/// Reads a batch back into changes (batch actor indices) and the optional state section.
struct ChangeBatchDecoder {
    private(set) var actors: [ActorID] = []
    private(set) var state: [UInt8]? = nil
    private var r: ByteReader
    private var lastSeq: [UInt64] = []
    private var previousEnd: UInt64 = 1
    private var previousTime: Int64 = 0
    private var previousActor: UInt32 = .max

    /// Largest decompressed size accepted, relative to the compressed input (a bound on allocation).
    static let maximumExpansion = 64
    /// Every seq and op id decoded is below this, so counting on from one never overflows.
    static let counterLimit = UInt64.max / 2

    init(_ bytes: [UInt8]) throws(PeatCRDTError) {
        guard bytes.count >= 2 else { throw ByteReader.malformed("batch shorter than its header") }
        guard bytes[0] == ChangeBatch.formatVersion else {
            throw PeatCRDTError(.unsupportedVersion, "change format \(bytes[0]) (this build reads \(ChangeBatch.formatVersion))")
        }
        let flags = bytes[1]
        guard flags & ~(ChangeBatch.flagCompressed | ChangeBatch.flagState) == 0 else {
            throw ByteReader.malformed("unknown batch flags")
        }
        if flags & ChangeBatch.flagCompressed != 0 {
            var header = ByteReader(bytes, from: 2)
            let size = try header.uleb()
            guard size <= UInt64(bytes.count) * UInt64(Self.maximumExpansion) else {
                throw ByteReader.malformed("declared size exceeds the expansion bound")
            }
            let inner = try LZCompression.decompress(bytes[header.offset...], size: Int(size))
            r = ByteReader(inner)
        } else {
            r = ByteReader(bytes, from: 2)
        }
        let n = try r.count(minimumItemSize: 16)
        actors.reserveCapacity(n)
        for _ in 0..<n { actors.append(ActorID(high: try r.uint64BigEndian(), low: try r.uint64BigEndian())) }
        guard Set(actors).count == actors.count else { throw ByteReader.malformed("duplicate actor in batch") }
        lastSeq = Array(repeating: 0, count: n)
        if flags & ChangeBatch.flagState != 0 { state = try r.data() }
    }

    private mutating func actorIndex() throws(PeatCRDTError) -> UInt32 {
        let a = try r.uleb()
        guard a < UInt64(actors.count) else { throw ByteReader.malformed("actor index out of range") }
        return UInt32(a)
    }

    /// Decodes every record, handing each change to `body` in order.
    mutating func forEachChange(_ body: (DecodedChange) throws(PeatCRDTError) -> Void) throws(PeatCRDTError) {
        while !r.isAtEnd {
            let header = try r.byte()
            guard let kind = ChangeBatch.Kind(rawValue: header & 0x03) else { throw ByteReader.malformed("unknown record kind") }
            let actor: UInt32
            if header & ChangeBatch.actorSame != 0 {
                guard previousActor != .max else { throw ByteReader.malformed("record without an actor") }
                actor = previousActor
            } else {
                actor = try actorIndex()
            }
            let seq = header & ChangeBatch.seqNext != 0 ? lastSeq[Int(actor)] + 1 : try r.uleb()
            let startOp = header & ChangeBatch.startOpNext != 0 ? previousEnd : try r.uleb()
            guard seq > 0, startOp > 0, seq < Self.counterLimit, startOp < Self.counterLimit else {
                throw ByteReader.malformed("sequence number or op id out of range")
            }
            // A delete run's changes take no bytes each: bound them by a multiple of the input instead.
            let count: Int
            switch kind {
            case .change: count = 1
            case .textRun: count = try r.count()
            case .deleteRun:
                let n = try r.uleb()
                guard n <= UInt64(r.remaining + 16) * 64 else { throw ByteReader.malformed("delete run longer than its bound") }
                count = Int(n)
            }
            if kind != .change, count < 2 { throw ByteReader.malformed("run shorter than two changes") }
            guard UInt64(count) < Self.counterLimit - max(seq, startOp) else {
                throw ByteReader.malformed("run beyond the sequence number or op id range")
            }
            var times: [Int64] = []
            if kind != .change, header & ChangeBatch.uniformTime != 0 {
                guard header & ChangeBatch.timeSame == 0 else { throw ByteReader.malformed("conflicting time flags") }
                previousTime = previousTime &+ (try r.sleb())
            } else if header & ChangeBatch.timeSame == 0 {
                times.reserveCapacity(count)
                for _ in 0..<count {
                    previousTime = previousTime &+ (try r.sleb())
                    times.append(previousTime)
                }
            }
            let sameTime = previousTime
            func time(_ i: Int) -> Int64 { times.isEmpty ? sameTime : times[i] }
            previousActor = actor
            switch kind {
            case .change:
                var deps: [(actor: UInt32, seq: UInt64)] = []
                var external: [ChangeHash] = []
                if header & ChangeBatch.hasDeps != 0 {
                    let n = try r.count(minimumItemSize: 3)
                    for _ in 0..<n {
                        switch try r.byte() {
                        case 0:
                            let a = try actorIndex()
                            let s = try r.uleb()
                            guard a != actor else { throw ByteReader.malformed("dependency on the change's own actor") }
                            deps.append((a, s))
                        case 1:
                            external.append(ChangeHash(bytes: try r.raw(32))!)
                        default:
                            throw ByteReader.malformed("unknown dependency tag")
                        }
                    }
                }
                let nOps = header & ChangeBatch.singleOp != 0 ? 1 : try r.count()
                guard nOps > 0 else { throw ByteReader.malformed("change without operations") }
                var ops: [Op] = []
                ops.reserveCapacity(nOps)
                var own = startOp
                for _ in 0..<nOps {
                    let op = try OpCodec.decode(own: own, actorCount: actors.count, from: &r)
                    own += op.action.width
                    guard own < Self.counterLimit else { throw ByteReader.malformed("op id out of range") }
                    ops.append(op)
                }
                try body(
                    DecodedChange(
                        actor: actor, seq: seq, startOp: startOp, time: time(0), deps: deps,
                        externalDeps: external, ops: ops))
                lastSeq[Int(actor)] = seq
                previousEnd = own
            case .textRun:
                let obj = try OpCodec.readID(own: startOp, actorCount: actors.count, from: &r)
                guard !obj.isZero else { throw ByteReader.malformed("text run on the root") }
                var reference = try OpCodec.readID(own: startOp, actorCount: actors.count, from: &r)
                let text = try r.string()
                var i = 0
                for scalar in text.unicodeScalars {
                    guard i < count else { throw ByteReader.malformed("text run longer than its count") }
                    let own = startOp + UInt64(i)
                    let op = Op(
                        obj: obj, key: .seq(reference), insert: true,
                        action: .text(String(scalar), width: 1), pred: .none)
                    try body(
                        DecodedChange(
                            actor: actor, seq: seq + UInt64(i), startOp: own, time: time(i),
                            deps: [], externalDeps: [], ops: [op]))
                    reference = OpID(counter: own, actor: actor)
                    i += 1
                }
                guard i == count else { throw ByteReader.malformed("text run shorter than its count") }
                lastSeq[Int(actor)] = seq + UInt64(count) - 1
                previousEnd = startOp + UInt64(count)
            case .deleteRun:
                let obj = try OpCodec.readID(own: startOp, actorCount: actors.count, from: &r)
                guard !obj.isZero else { throw ByteReader.malformed("delete run on the root") }
                let first = try OpCodec.readID(own: startOp, actorCount: actors.count, from: &r)
                guard !first.isZero else { throw ByteReader.malformed("delete of the start marker") }
                let step = try r.sleb()
                var target = first.counter
                for i in 0..<count {
                    let own = startOp + UInt64(i)
                    guard target > 0, target < own else { throw ByteReader.malformed("delete target out of range") }
                    let t = OpID(counter: target, actor: first.actor)
                    let op = Op(obj: obj, key: .seq(t), insert: false, action: .delete, pred: .one(t))
                    try body(
                        DecodedChange(
                            actor: actor, seq: seq + UInt64(i), startOp: own, time: time(i),
                            deps: [], externalDeps: [], ops: [op]))
                    target = UInt64(bitPattern: Int64(bitPattern: target) &+ step)
                }
                lastSeq[Int(actor)] = seq + UInt64(count) - 1
                previousEnd = startOp + UInt64(count)
            }
        }
    }
}
