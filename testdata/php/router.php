<?php
// A legacy backend as PHP and Symfony read a request, for the tests: run
// with `php -S 127.0.0.1:<port> router.php`. It answers, as JSON, what the
// application would act on: Symfony's getMethod() with method override
// enabled (the header on POST, then the body's _method, then the query's),
// the method PHP was sent, the path, $_GET and $_POST names, and the
// Authorization header. A Symfony refusal is reported, not thrown.
require_once '/usr/share/php/Symfony/Component/HttpFoundation/autoload.php';

use Symfony\Component\HttpFoundation\Request;

Request::enableHttpMethodParameterOverride();
$out = ['backend' => 'php', 'sent' => $_SERVER['REQUEST_METHOD'], 'uri' => $_SERVER['REQUEST_URI'],
    'get' => array_map('strval', array_keys($_GET)), 'post' => array_map('strval', array_keys($_POST))];
try {
    $r = Request::createFromGlobals();
    $out['method'] = $r->getMethod();
    $out['path'] = $r->getPathInfo();
    $out['authorization'] = $r->headers->get('Authorization', '');
} catch (Throwable $e) {
    $out['method'] = '';
    $out['refused'] = get_class($e) . ': ' . $e->getMessage();
}
header('Content-Type: application/json');
echo json_encode($out);
