import PeatTestSupport
import PropertyBased
import Testing

@testable import PeatCRDT

struct CodecTests {
    @Test func lebRoundTripsExtremes() throws {
        for v: UInt64 in [0, 1, 127, 128, 300, UInt64(UInt32.max), .max] {
            var w = ByteWriter()
            w.uleb(v)
            var r = ByteReader(w.bytes)
            #expect(try r.uleb() == v)
        }
        for v: Int64 in [0, -1, 63, -64, 64, -65, .max, .min] {
            var w = ByteWriter()
            w.sleb(v)
            var r = ByteReader(w.bytes)
            #expect(try r.sleb() == v)
        }
        var overlong = ByteReader([UInt8](repeating: 0xFF, count: 11))
        #expect(throws: PeatCRDTError.self) { try overlong.uleb() }
    }

    @Test func lzRoundTripsAndRefusesBadOffsets() throws {
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog; ", count: 200).utf8)
        let packed = LZCompression.compress(text)
        #expect(packed.count < text.count / 5)
        #expect(try LZCompression.decompress(packed[...], size: text.count) == text)
        // A match pointing before the start of the output.
        #expect(throws: PeatCRDTError.self) { try LZCompression.decompress([0x10, 0x41, 0xFF, 0x00][...], size: 10) }
    }

    @Test func runsEncodeTypingCompactly() throws {
        let d = Document(actor: actor(1))
        let t = try d.putObject(.root, "t", .text)
        d.commit()
        let sentence = "a sentence typed one character at a time"
        for (i, c) in sentence.enumerated() {
            try d.spliceText(t, at: i, inserting: String(c))
            d.commit(time: 1_700_000_000_000)
        }
        for _ in 0..<8 {
            try d.spliceText(t, at: d.count(t) - 1, deleting: 1)
            d.commit(time: 1_700_000_000_000)
        }
        let saved = d.save()
        // Two runs and a handful of header bytes, not one record per keystroke (changes made in one
        // millisecond; distinct times add one byte per change).
        #expect(saved.count < sentence.utf8.count + 60)
        let loaded = try Document(loading: saved, actor: actor(2))
        #expect(loaded.text(t) == d.text(t))
        #expect(loaded.heads == d.heads)
    }

    /// Valid encodings cut short, with bytes flipped, or pure noise: always an error, never a trap,
    /// and the receiving document keeps its state.
    @Test func decoderSurvivesTruncatedMutatedAndRandomInput() async throws {
        let source = Document(actor: actor(1))
        var rng = SeededRandom(seed: 42)
        for _ in 0..<40 { try randomEdit(source, &rng) }
        let saved = source.save()
        let batch = source.encodeChanges(since: VersionVector())!
        let snapshot = source.latestSnapshot()
        var state = SyncState()
        let message = source.generateSyncMessage(&state, mode: .fullHistory)!
        let samples = [saved, batch, snapshot, message, source.version.encoded()]
        await throwingPropertyCheck(count: 400, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            var bytes = samples.randomElement(using: &rng)!
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
            case 1:
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            default: bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            let target = Document(actor: actor(7))
            try target.put(.root, "keep", .string("me"))
            target.commit()
            _ = try? Document(loading: bytes, actor: actor(8))
            _ = try? target.applyChanges(bytes)
            _ = try? target.mergeLatestSnapshot(bytes)
            _ = try? VersionVector(decoding: bytes)
            var s = SyncState()
            _ = try? target.receiveSyncMessage(bytes, &s, mode: .fullHistory)
            _ = try? target.receiveSyncMessage(bytes, &s, mode: .latestOnly)
            #expect(target.get(.root, "keep") == .scalar(.string("me")))
        }
    }

    @Test func compressedSizeClaimsAreBounded() {
        // Declares a 4 GiB body in a few bytes: refused before allocating.
        var w = ByteWriter()
        w.byte(ChangeBatch.formatVersion)
        w.byte(ChangeBatch.flagCompressed)
        w.uleb(UInt64(1) << 32)
        w.raw([0xF0, 0xFF, 0xFF])
        #expect(throws: PeatCRDTError.self) { try Document(loading: w.bytes, actor: actor(1)) }
    }

    /// A value of one repeated character compresses far beyond the decoder's expansion bound; the
    /// encoder must then store it uncompressed, or the document could never be loaded or synced.
    @Test func highlyCompressibleDocumentsLoadAndSync() throws {
        let source = Document(actor: actor(1))
        try source.put(.root, "pad", .string(String(repeating: "a", count: 512 * 1024)))
        source.commit()
        let loaded = try Document(loading: source.save(), actor: actor(2))
        #expect(loaded.toJSON() == source.toJSON())
        let target = Document(actor: actor(3))
        try target.applyChanges(try #require(source.encodeChanges(since: VersionVector())))
        #expect(target.toJSON() == source.toJSON())
    }

    @Test func unknownFormatVersionIsReportedAsSuch() {
        do {
            _ = try Document(loading: [9, 0], actor: actor(1))
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .unsupportedVersion)
        }
    }
}
