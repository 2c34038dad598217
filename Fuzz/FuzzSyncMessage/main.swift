import PeatCRDT
import PeatFuzzCRDTSupport
import PeatFuzzSupport

/// `Document.receiveSyncMessage(_:_:mode:)` — a peer's sync messages, in sequence, in one sync mode —
/// with this side's answers generated between them. A bad message throws a `PeatCRDTError`; then and
/// after the last one the document still edits, saves and reloads.
///
/// Input: a setup byte (mode, receiving document), then messages (2-byte length and bytes).
enum SyncMessageTarget {
    static let modes: [SyncMode] = [.fullHistory, .latestOnly, .windowedHistory(seconds: 3600)]

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let setup = input.byte()
        let mode = modes[Int(setup & 0x03) % modes.count]
        let doc = setup & 0x04 == 0 ? Document(actor: SampleDocuments.fuzzer) : SampleDocuments.small(SampleDocuments.fuzzer)
        doc.maximumQueuedChanges = 1_000
        var state = SyncState()
        _ = doc.generateSyncMessage(&state, mode: mode)
        var messages = 0
        while !input.isAtEnd, messages < 16 {
            messages += 1
            do {
                try doc.receiveSyncMessage(input.message(), &state, mode: mode)
            } catch {
                break
            }
            var answers = 0
            while answers < 4, doc.generateSyncMessage(&state, mode: mode) != nil { answers += 1 }
        }
        DocumentChecks.editSaveAndReload(doc)
    }

    /// The messages `sender` sends a peer that starts with `receiver`'s state, as the protocol runs.
    static func conversation(_ sender: Document, _ receiver: Document, mode: SyncMode) -> [[UInt8]] {
        var senderState = SyncState()
        var receiverState = SyncState()
        var sent: [[UInt8]] = []
        for _ in 0..<8 {
            var moved = false
            if let message = receiver.generateSyncMessage(&receiverState, mode: mode) {
                try? sender.receiveSyncMessage(message, &senderState, mode: mode)
                moved = true
            }
            if let message = sender.generateSyncMessage(&senderState, mode: mode) {
                sent.append(message)
                try? receiver.receiveSyncMessage(message, &receiverState, mode: mode)
                moved = true
            }
            if !moved { break }
        }
        return sent
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (m, mode) in modes.enumerated() {
            for (name, sender) in SampleDocuments.all() {
                for (r, receiver) in ["empty", "small"].enumerated() {
                    let target = r == 0 ? Document(actor: SampleDocuments.fuzzer) : SampleDocuments.small(SampleDocuments.fuzzer)
                    let messages = conversation(sender, target, mode: mode)
                    seeds.append(("\(mode)-\(name)-to-\(receiver)", [UInt8(m) | UInt8(r) << 2] + FuzzInput.framed(messages)))
                }
            }
        }
        return seeds.map { (name: $0.0.replacingColons(), bytes: $0.1) }
    }
}

extension String {
    /// File names without the `(` `)` `:` of `SyncMode` descriptions.
    fileprivate func replacingColons() -> String {
        String(map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    SyncMessageTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: SyncMessageTarget.seeds)
