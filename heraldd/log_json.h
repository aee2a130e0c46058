/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd --log-format json: every log line one JSON object on stderr,
 * {"time":"2006-01-02T15:04:05.000Z","level":"info","message":"..."},
 * for collectors that parse lines (journald keeps either form). */
#ifndef API_LOG_JSON_H
#define API_LOG_JSON_H

/* Sends hd_log's lines through the JSON writer from now on. */
void api_log_json_start(void);

#endif
