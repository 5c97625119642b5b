<?php
// The PHP oracle for parameter names: for each line of stdin (a raw query
// string or urlencoded form body), the names PHP registers for it, as
// $_GET and $_POST would hold them (parse_str runs the same
// php_default_treat_data / php_register_variable_ex code). One JSON array
// of top-level names per line.
while (($line = fgets(STDIN)) !== false) {
    $line = rtrim($line, "\n");
    $out = [];
    parse_str($line, $out);
    echo json_encode(array_map('strval', array_keys($out))), "\n";
}
