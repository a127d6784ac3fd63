import HTTP1

/// Where the upstream is: scheme, authority and a path prefix of the base URL.
struct Endpoint {
    let tls: Bool
    /// `scheme://authority/`: what libcurl connects to.
    let connectURL: String
    /// `Host` field value.
    let authority: [UInt8]
    /// A path the base URL carries, put before every request's path.
    let pathPrefix: [UInt8]

    init(_ baseURL: String) {
        let bytes = Array(baseURL.utf8)
        var rest = bytes[...]
        var tls = false
        if let i = bytes.firstIndex(of: ASCII.colon), bytes[i...].starts(with: "://".utf8) {
            tls = bytes[..<i].equalsLowercased("https")
            rest = bytes[(i + 3)...]
        }
        let slash = rest.firstIndex(of: ASCII.slash) ?? rest.endIndex
        self.tls = tls
        authority = Array(rest[..<slash])
        var prefix = Array(rest[slash...])
        while prefix.last == ASCII.slash { prefix.removeLast() }
        pathPrefix = prefix
        connectURL = (tls ? "https://" : "http://") + String(decoding: authority, as: UTF8.self) + "/"
    }
}
