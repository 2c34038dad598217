import PeatFuzzMeshSupport
import PeatFuzzSupport
import PeatMesh

/// `SyncSession.StateMachine.receive(_:documents:)` fed a peer's frames, in order, by a replica
/// holding documents of every sync mode. A refused frame must throw `.protocolViolation` and leave the
/// machine unchanged (the session then closes, so the run stops); after each accepted frame the
/// machine's answers are drained and must be well-formed mesh messages.
///
/// Input: frames, each a 2-byte length and its bytes (`FuzzInput.message()`).
enum SyncSessionTarget {
    static let peer = MeshReplica("node-b").device

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let local = MeshReplica.populated("node-a", extra: false)
        var machine = SyncSession.StateMachine(peer: peer, localNodeID: local.nodeID, incarnation: local.store.actorID)
        _ = machine.nextFrame(documents: local.repository)  // our hello
        var frames = 0
        while !input.isAtEnd, frames < 64 {
            frames += 1
            let frame = input.message()
            let before = machine
            do {
                _ = try machine.receive(frame, documents: local.repository)
            } catch {
                fuzzInvariant(error.code == .protocolViolation, "receive threw \(error.code)")
                fuzzInvariant(machine == before, "a refused frame changed the machine")
                return
            }
            var answers = 0
            while answers < 16, let answer = machine.nextFrame(documents: local.repository) {
                answers += 1
                fuzzInvariant((try? MeshMessage(decoding: answer)) != nil, "the machine sent a frame it cannot decode")
            }
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        let pairs: [(String, MeshReplica, MeshReplica)] = [
            ("peer-has-more", MeshReplica.populated("node-a", extra: false), MeshReplica.populated("node-b", extra: true)),
            ("peer-in-sync", MeshReplica.populated("node-a", extra: false), MeshReplica.populated("node-b", extra: false)),
            ("peer-empty", MeshReplica.populated("node-a", extra: false), MeshReplica("node-b")),
            ("both-wrote", MeshReplica.populated("node-a", extra: true), MeshReplica.populated("node-b", extra: true)),
        ]
        for (name, a, b) in pairs {
            let frames = MeshSessionRecorder.record(a, b).bToA
            seeds.append((name, FuzzInput.framed(frames)))
            // The same session with its document frames cut into chunks.
            let chunked = frames.flatMap { frame -> [[UInt8]] in
                guard frame.count > 8, frames.first != frame else { return [frame] }
                let half = frame.count / 2
                return [
                    MeshMessage.chunk(more: true, bytes: Array(frame[..<half])).encoded(),
                    MeshMessage.chunk(more: false, bytes: Array(frame[half...])).encoded(),
                ]
            }
            seeds.append((name + "-chunked", FuzzInput.framed(chunked)))
        }
        let hello = MeshSessionRecorder.record(MeshReplica("node-a"), MeshReplica("node-b")).bToA.first ?? []
        seeds += [
            ("hello-twice", FuzzInput.framed([hello, hello])),
            ("root-before-hello", FuzzInput.framed([MeshMessage.root(digest: Array(repeating: 0, count: 16), documents: 0, isReply: false).encoded()])),
            ("chunk-inside-chunk", FuzzInput.framed([hello, MeshMessage.chunk(more: true, bytes: [1, 6]).encoded(), hello])),
        ]
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    SyncSessionTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: SyncSessionTarget.seeds)
