/* The logger: logs the type of every incoming event and lets it through. */
#include "eventgateway.h"

void eg_plugin_subscriptions(void) { eg_subscribe("eventgateway.event.received", EG_SYNC); }

eg_reaction eg_plugin_react(eg_value event) {
    eg_text_begin();
    eg_text_add("received event ");
    eg_text_add_str(eg_ce_type(eg_incoming(event)));
    eg_log(EG_INFO, eg_text_end());
    return EG_CONTINUE;
}
