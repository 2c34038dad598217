import PeatFuzzMeshSupport
import PeatFuzzSupport
import PeatMesh

/// `MeshMessage(decoding:)` on one frame: it either throws `.protocolViolation` or returns a message
/// that encodes and decodes to itself.
enum MeshMessageTarget {
    static func run(_ bytes: [UInt8]) {
        let message: MeshMessage
        do {
            message = try MeshMessage(decoding: bytes)
        } catch {
            fuzzInvariant(error.code == .protocolViolation, "MeshMessage threw \(error.code)")
            return
        }
        let again = try? MeshMessage(decoding: message.encoded())
        fuzzInvariant(again == message, "a decoded message does not survive encoding")
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let a = MeshReplica.populated("node-a", extra: false)
        let b = MeshReplica.populated("node-b", extra: true)
        var seeds: [(String, [UInt8])] = []
        for (n, frame) in MeshSessionRecorder.record(a, b).all.enumerated() { seeds.append(("session-\(n)", frame)) }
        seeds += [
            ("chunk-more", MeshMessage.chunk(more: true, bytes: Array(repeating: 7, count: 40)).encoded()),
            ("chunk-last", MeshMessage.chunk(more: false, bytes: []).encoded()),
            ("empty", []),
            ("version-only", [1]),
            ("unknown-kind", [1, 9]),
            ("future-version", [2, 0]),
        ]
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    MeshMessageTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: MeshMessageTarget.seeds)
