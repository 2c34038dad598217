import Testing

@testable import PeatTransport

struct FrameQueueTests {
    @Test func deliversInOrderAndDrainsAfterFinish() async {
        let queue = FrameQueue(capacity: 4)
        for index in 0..<3 { #expect(await queue.send([UInt8(index)])) }
        queue.finish()
        #expect(await queue.send([9]) == false)
        #expect(await queue.next() == [0])
        #expect(await queue.next() == [1])
        #expect(await queue.next() == [2])
        #expect(await queue.next() == nil)
    }

    @Test func senderWaitsWhileFullUntilTheReaderTakesOne() async {
        let queue = FrameQueue(capacity: 2)
        #expect(await queue.send([0]))
        #expect(await queue.send([1]))
        async let third = queue.send([2])  // waits: the queue is full
        #expect(await queue.next() == [0])
        #expect(await third)
        #expect(await queue.next() == [1])
        #expect(await queue.next() == [2])
    }

    @Test func finishWakesAWaitingReaderAndWaitingSenders() async {
        let reader = FrameQueue(capacity: 1)
        async let nothing = reader.next()
        reader.finish()
        #expect(await nothing == nil)

        let full = FrameQueue(capacity: 1)
        #expect(await full.send([0]))
        async let refused = full.send([1])
        full.finish()
        #expect(await refused == false)
        #expect(await full.next() == [0])
    }
}
