import CLMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A thin, safe wrapper around an LMDB environment: transactions as closures, errors as
/// `StorageError`, and a map that grows when it fills up.
///
/// `@unchecked Sendable`: the `MDB_env` is thread-safe for LMDB's own operations (opened with
/// `MDB_NOTLS`, so a read transaction is not tied to the thread that began it — Swift tasks hop
/// threads), writers are serialised by `writeLock`, and resizing the map, which LMDB allows only
/// while no transaction is active in the process, takes `resizeLock` exclusively while every
/// transaction holds it shared.
final class LMDBEnvironment: @unchecked Sendable {
    private let env: OpaquePointer
    private let resizeLock: UnsafeMutablePointer<pthread_rwlock_t>
    private let writeLock = Mutex(())
    private let maximumMapSize: Int
    private var mapSize: Int  // guarded by resizeLock (written only while held exclusively)
    private var isClosed = false  // guarded by resizeLock

    /// Opens (creating if needed) the environment in directory `path`.
    init(path: String, initialMapSize: Int, maximumMapSize: Int, maxDatabases: Int) throws(StorageError) {
        var env: OpaquePointer?
        try Self.check(mdb_env_create(&env), "creating the LMDB environment")
        guard let env else { throw StorageError(code: .lmdb, message: "mdb_env_create returned no environment") }
        self.env = env
        self.maximumMapSize = max(maximumMapSize, initialMapSize)
        resizeLock = .allocate(capacity: 1)
        pthread_rwlock_init(resizeLock, nil)
        do {
            try Self.check(mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases)), "setting the number of databases")
            // A reopened store may already be larger than the initial size.
            var size = initialMapSize
            if let existing = Self.fileSize(path + "/data.mdb") {
                while size < existing, size < self.maximumMapSize { size = min(size * 2, self.maximumMapSize) }
            }
            mapSize = size
            try Self.check(mdb_env_set_mapsize(env, size), "setting the map size")
            try Self.check(mdb_env_open(env, path, UInt32(MDB_NOTLS), 0o600), "opening \(path)")
        } catch {
            mdb_env_close(env)
            pthread_rwlock_destroy(resizeLock)
            resizeLock.deallocate()
            throw error
        }
    }

    deinit {
        close()
        pthread_rwlock_destroy(resizeLock)
        resizeLock.deallocate()
    }

    /// Closes the environment; later transactions fail with `.closed`.
    func close() {
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        guard !isClosed else { return }
        isClosed = true
        mdb_env_close(env)
    }

    /// Runs `body` in a read-only transaction.
    func read<R>(_ body: (borrowing Transaction) throws(StorageError) -> R) throws(StorageError) -> R {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        guard !isClosed else { throw StorageError(code: .closed, message: "the store is closed") }
        var txn: OpaquePointer?
        try Self.check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "beginning a read transaction")
        defer { mdb_txn_abort(txn) }
        return try body(Transaction(txn: txn!))
    }

    /// Runs `body` in a write transaction and commits it durably (fsync), growing the map and
    /// retrying when it is full. `body` may run more than once; it must not have side effects
    /// outside the transaction.
    func write<R: Sendable>(_ body: (borrowing Transaction) throws(StorageError) -> R) throws(StorageError) -> R {
        try writeLock.withLock { _ throws(StorageError) -> R in
            while true {
                switch attemptWrite(body) {
                case .success(let value):
                    return value
                case .failure(let error) where error.code == .mapFull:
                    try grow()
                case .failure(let error):
                    throw error
                }
            }
        }
    }

    private func attemptWrite<R>(_ body: (borrowing Transaction) throws(StorageError) -> R) -> Result<R, StorageError> {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        guard !isClosed else { return .failure(StorageError(code: .closed, message: "the store is closed")) }
        var txn: OpaquePointer?
        do {
            try Self.check(mdb_txn_begin(env, nil, 0, &txn), "beginning a write transaction")
            let value = try body(Transaction(txn: txn!))
            let status = mdb_txn_commit(txn)
            txn = nil  // committed or failed: the transaction is gone either way
            try Self.check(status, "committing")
            return .success(value)
        } catch {
            if let txn { mdb_txn_abort(txn) }
            return .failure(error)
        }
    }

    /// Doubles the map size (up to the maximum) with no transaction active in this process.
    private func grow() throws(StorageError) {
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        guard mapSize < maximumMapSize else {
            throw StorageError(
                code: .mapFull,
                message: "the store reached its maximum size of \(maximumMapSize) bytes (MDB_MAP_FULL)")
        }
        let newSize = min(mapSize * 2, maximumMapSize)
        try Self.check(mdb_env_set_mapsize(env, newSize), "growing the map to \(newSize) bytes")
        mapSize = newSize
    }

    /// Opens (creating) a named database; call once, in the first write transaction.
    func openDatabase(_ name: String, in transaction: borrowing Transaction) throws(StorageError) -> MDB_dbi {
        var dbi = MDB_dbi()
        try Self.check(mdb_dbi_open(transaction.txn, name, UInt32(MDB_CREATE), &dbi), "opening database \(name)")
        return dbi
    }

    var currentMapSize: Int {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        return mapSize
    }

    static func check(_ status: Int32, _ what: String) throws(StorageError) {
        guard status != 0 else { return }
        let text = String(cString: mdb_strerror(status))
        let code: StorageError.Code =
            status == MDB_MAP_FULL ? .mapFull : (status == MDB_VERSION_MISMATCH || status == MDB_INVALID ? .incompatibleFormat : .lmdb)
        throw StorageError(code: code, message: "LMDB failed \(what): \(text) (\(status))")
    }

    private static func fileSize(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    /// One LMDB transaction, valid only inside the closure it was passed to.
    struct Transaction: ~Copyable {
        let txn: OpaquePointer

        /// Calls `body` with the value under `key` (memory valid only inside `body`), or nil.
        func get<R>(_ dbi: MDB_dbi, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws(StorageError) -> R) throws(StorageError) -> R {
            var value = MDB_val()
            let status = key.withUnsafeBytes { keyBytes in
                var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                return mdb_get(txn, dbi, &keyValue, &value)
            }
            if status == MDB_NOTFOUND { return try body(nil) }
            try LMDBEnvironment.check(status, "reading")
            return try body(UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
        }

        func put(_ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8]) throws(StorageError) {
            let status = key.withUnsafeBytes { keyBytes in
                value.withUnsafeBytes { valueBytes in
                    var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                    var dataValue = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                    return mdb_put(txn, dbi, &keyValue, &dataValue, 0)
                }
            }
            try LMDBEnvironment.check(status, "writing")
        }

        func delete(_ dbi: MDB_dbi, _ key: [UInt8]) throws(StorageError) {
            let status = key.withUnsafeBytes { keyBytes in
                var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                return mdb_del(txn, dbi, &keyValue, nil)
            }
            if status == MDB_NOTFOUND { return }
            try LMDBEnvironment.check(status, "deleting")
        }

        /// Visits entries whose key starts with `prefix`, in key order, starting at `prefix + from`
        /// (or the prefix itself); `body` returns false to stop.
        func forEach(
            _ dbi: MDB_dbi, prefix: [UInt8], from start: [UInt8]? = nil,
            _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(StorageError) -> Bool
        ) throws(StorageError) {
            var cursor: OpaquePointer?
            try LMDBEnvironment.check(mdb_cursor_open(txn, dbi, &cursor), "opening a cursor")
            defer { mdb_cursor_close(cursor) }
            var seek = start ?? prefix
            var key = MDB_val()
            var value = MDB_val()
            var status: Int32 = seek.withUnsafeMutableBytes { seekBytes in
                key = MDB_val(mv_size: seekBytes.count, mv_data: seekBytes.baseAddress)
                if seekBytes.count == 0 { return mdb_cursor_get(cursor, &key, &value, MDB_FIRST) }
                return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            }
            while status == 0 {
                let keyBytes = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
                guard keyBytes.starts(with: prefix) else { return }
                guard try body(keyBytes, UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)) else { return }
                status = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
            }
            if status != MDB_NOTFOUND { try LMDBEnvironment.check(status, "iterating") }
        }
    }
}
