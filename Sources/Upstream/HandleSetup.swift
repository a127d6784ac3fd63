import CCurl

/// Sets options on a new easy handle and keeps the first failure, so that
/// set-up reads as a list and one check at its end covers every option.
struct HandleSetup {
    let easy: UnsafeMutableRawPointer
    /// Which option failed and libcurl's reason.
    private(set) var failure: String?

    init(_ easy: UnsafeMutableRawPointer) {
        self.easy = easy
    }

    mutating func long(_ option: CURLoption, _ value: Int) {
        check(option, ccurl_easy_setopt_long(easy, option, value))
    }

    mutating func string(_ option: CURLoption, _ value: String) {
        check(option, ccurl_easy_setopt_string(easy, option, value))
    }

    /// Back to "none" for a string option whose build default is a value.
    mutating func unset(_ option: CURLoption) {
        check(option, ccurl_easy_setopt_string(easy, option, nil))
    }

    mutating func pointer(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) {
        check(option, ccurl_easy_setopt_pointer(easy, option, value))
    }

    mutating func check(_ option: CURLoption, _ code: CURLcode) {
        guard code != CURLE_OK, failure == nil else { return }
        let name = curl_easy_option_by_id(option).map { String(cString: $0.pointee.name) } ?? "\(option.rawValue)"
        failure = "CURLOPT_\(name): \(String(cString: curl_easy_strerror(code)))"
    }
}
